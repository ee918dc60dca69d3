"""The Debian package, end to end on this machine (as root): cpack -G DEB builds
pgvault_<version>_amd64.deb from the Release build ($PGVAULT_BUILD), whose Depends name the package of
every shared library the tools link; `apt-get install ./pgvault_*.deb` installs every tool of tools/ in
/usr/bin, the configuration as a conffile, the units, docs and man pages; the main job runs with the
INSTALLED tools ($PGVAULT_BIN=/usr/bin): PostgreSQL 15 archiving through /usr/bin/wal-push into a local
repository, base-push, pitr-prepare to a restore point, the restored data compared; then `apt-get
remove` takes the tools away and leaves the configuration and the data, and purge the configuration.

It installs into the real /usr: ctest runs it alone (RUN_SERIAL), and it refuses to start when a pgvault
package or a tool in /usr/bin is already there (it would replace and then remove them).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest

from debian import (PACKAGE, REPO_ROOT, apt, build_deb, control_field, depends_names, installed_version,
                    owning_package, package_state, provided_names, sh, shared_libraries, tool_names)
from helpers.pitr import archive_info, base_push, create_marks, db_state, mark, recover, start_primary
from helpers.proc import PG_USER, run
from helpers.repo import Repo

BIN = Path("/usr/bin")
CONF = Path("/etc/pgvault/pgvault.toml")
STATE_DIR = Path("/var/lib/pgvault")
UNIT_DIR = Path("/usr/lib/systemd/system")
DOC_DIR = Path("/usr/share/doc/pgvault")


def build_dir() -> Path:
    d = os.environ.get("PGVAULT_BUILD")
    if not d or not (Path(d) / "CPackConfig.cmake").is_file():
        pytest.fail("PGVAULT_BUILD must name a configured and built Release build directory (ctest sets it)")
    return Path(d)


@pytest.fixture(scope="module")
def deb():
    out = Path(tempfile.mkdtemp(prefix="pgvault-deb-"))
    started = time.monotonic()
    path = build_deb(build_dir(), out)
    print(f"cpack -G DEB: {time.monotonic() - started:.1f}s, {path.name}")
    yield path
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(deb):
    """The package installed with apt-get (dependencies from Debian's archive); purged afterwards."""
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if installed_version() is not None:
        pytest.fail(f"a {PACKAGE} package is already installed on this machine: not replacing it")
    present = [t for t in tool_names() if (BIN / t).exists()]
    if present:
        pytest.fail(f"{', '.join(present)} already in {BIN}: not replacing them")
    state_dir_existed = STATE_DIR.exists()
    try:
        apt("install", "--no-install-recommends", str(deb))
        assert installed_version() == control_field(deb, "Version")
        yield {"state_dir_existed": state_dir_existed}
    finally:
        if package_state() != "not-installed":
            apt("purge", PACKAGE)
        if not state_dir_existed:
            shutil.rmtree(STATE_DIR, ignore_errors=True)


def test_name_version_and_depends_cover_every_linked_library(deb):
    assert deb.name == f"{PACKAGE}_{control_field(deb, 'Version')}_amd64.deb"
    assert control_field(deb, "Architecture") == "amd64"
    depends = depends_names(control_field(deb, "Depends"))
    unpacked = Path(tempfile.mkdtemp(prefix="pgvault-deb-x-"))
    try:
        sh("dpkg-deb", "-x", str(deb), str(unpacked))
        needed = {}
        for tool in tool_names():
            for lib in shared_libraries(unpacked / "usr/bin" / tool):
                needed.setdefault(owning_package(lib), set()).add(tool)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    missing = {pkg: sorted(tools) for pkg, tools in needed.items() if not provided_names(pkg) & depends}
    assert not missing, f"Depends ({sorted(depends)}) lacks the packages of linked libraries: {missing}"
    assert {"libpq5", "libssl3", "libzstd1", "libc6"} <= depends
    # A Release build carries libstdc++, spdlog, fmt and toml++ (PGVAULT_LEAN_START): the tools are started
    # once per WAL segment, and each shared C++ library cost the dynamic loader its symbols in every call.
    carried = {"libstdc++6", "libgcc-s1", "libspdlog1.10", "libfmt9", "libtomlplusplus3"}
    assert not needed.keys() & carried, f"tools link the shared C++ libraries: {sorted(needed.keys() & carried)}"


def test_install_lays_out_tools_conffile_units_docs_and_man_pages(installed):
    files = set(sh("dpkg", "-L", PACKAGE).split())
    for tool in tool_names():
        assert str(BIN / tool) in files, f"{BIN / tool} is not in the package"
        out = run([str(BIN / tool), "--version"], user=PG_USER, check=True).stdout
        assert out.startswith("pgvault "), out
        assert f"/usr/share/man/man1/{tool}.1.gz" in files, f"no man page for {tool}"
    assert str(CONF) in files and CONF.is_file()
    assert str(CONF) in sh("dpkg-query", "-W", "-f=${Conffiles}", PACKAGE), "the configuration is no conffile"
    units = sorted(p.name for p in (REPO_ROOT / "conf/systemd").iterdir())
    assert units, "conf/systemd is empty"
    for unit in units:
        path = UNIT_DIR / unit
        assert str(path) in files, f"{path} is not in the package"
        for line in path.read_text().splitlines():
            if line.startswith("ExecStart="):
                exe = line.split("=", 1)[1].split()[0]
                assert exe.startswith("/usr/bin/") and Path(exe).is_file(), f"{unit}: {line}"
    cron = DOC_DIR / "examples/cron.d/pgvault"
    assert str(cron) in files and "/usr/local/bin/" not in cron.read_text()
    for doc in ["README.md", *(p.name for p in (REPO_ROOT / "docs").glob("*.md"))]:
        assert str(DOC_DIR / doc) in files, f"{doc} is not in {DOC_DIR}"
    if not installed["state_dir_existed"]:
        st = STATE_DIR.stat()
        assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == Path("/var/lib/postgresql").stat().st_uid


def test_main_job_runs_with_the_installed_tools(installed, workspace, monkeypatch):
    monkeypatch.setenv("PGVAULT_BIN", str(BIN))
    repo = Repo(workspace, "fs")
    assert repo.tool("wal-push") == str(BIN / "wal-push")
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    mark(pg, "before-backup", 1)
    base_push(pg, repo)
    mark(pg, "after-backup", 2)
    pg.pgbench(["-t", "100", "-c", "2"])
    pg.psql("SELECT pg_create_restore_point('package_point')")
    expected = db_state(pg)
    mark(pg, "after-point", 3)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    restored, summary = recover(workspace, repo, "restored", "--target-name", "package_point")
    assert db_state(restored) == expected
    assert "wal-fetch" in restored.scalar("SHOW restore_command") and str(BIN) in restored.scalar("SHOW restore_command")
    verify = archive_info(repo, "--verify")
    assert verify.rc == 0, verify.stderr


def test_remove_leaves_configuration_and_data_and_purge_the_configuration(installed):
    repo_dir = STATE_DIR / f"package-test-{os.getpid()}"
    run([str(BIN / "repo-init"), "--set", f"repository.path={repo_dir}"], user=PG_USER, cwd="/", check=True)
    before = sorted(p.name for p in repo_dir.iterdir())
    try:
        apt("remove", PACKAGE)
        assert package_state() == "config-files"
        for tool in tool_names():
            assert not (BIN / tool).exists(), f"{BIN / tool} left after apt-get remove"
        assert CONF.is_file(), "apt-get remove deleted the configuration"
        apt("purge", PACKAGE)
        assert package_state() == "not-installed"
        assert not CONF.exists(), "apt-get purge left the configuration"
        assert sorted(p.name for p in repo_dir.iterdir()) == before, "removal touched the repository"
    finally:
        shutil.rmtree(repo_dir, ignore_errors=True)
