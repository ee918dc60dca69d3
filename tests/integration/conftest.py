"""pytest fixtures shared by the integration tests.

* ``workspace``: a :class:`helpers.pg.Workspace` -- a fresh postgres-owned temp dir; every cluster
  made with ``workspace.cluster(name)`` is stopped and the directory removed when the test ends,
  pass or fail.  On failure the tail of each cluster's server log is printed.
* ``pgvault_tools``: ``pgvault_tools["wal-push"]`` is the absolute path of a pgvault executable that
  the postgres user can run (copied out of $PGVAULT_BIN if postgres cannot reach the build dir).
* ``pg_version``: the major version (int) of the PostgreSQL servers of this run: $PGVAULT_PG_VERSION,
  15 (Debian's) by default, 16 to 18 from scripts/fetch-pg.sh.  A test for some versions only is
  marked ``@pytest.mark.pg_versions(min=17)`` (or ``max=15``) and skipped on the others.

The helpers package is importable from tests as ``helpers`` (this directory is on sys.path).

What a run leaves behind: nothing. Besides the workspaces, the tools keep files where no config names a
folder: the S3 capability cache ($XDG_RUNTIME_DIR/pgvault, else ${TMPDIR:-/tmp}/pgvault-<euid>), the
local state, spools and owed queues (/var/lib/pgvault, else /var/tmp/pgvault-<uid>), restore-drill's
work directory ($TMPDIR, else /var/tmp); on a developer's machine those may be an operator's. So every
config a test writes names folders of its workspace (``helpers.repo.local_dirs``), and the run has a
private temp directory (:func:`start_run_tmpdir`): the TMPDIR of every tool and server the tests start
(XDG_RUNTIME_DIR unset) and pytest's basetemp (``tmp_path``), removed at the end
(``PGVAULT_TEST_KEEP=1`` keeps it). The session fails if it created a file at one of those default
locations (``default_locations_untouched``).
"""

import os
import re
import signal
import tempfile
import time
from pathlib import Path

from helpers.proc import PG_USER, chown_to, remove_tree, user_ids

import pytest

from helpers.pg import PG_VERSION, Workspace


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config):
    start_run_tmpdir(config)
    configure_harness(config)


def pytest_unconfigure(config):
    end_run_tmpdir(config)


def configure_harness(config):
    config.addinivalue_line("markers", "pg_versions(min=15, max=None): run only on these PostgreSQL "
                                       "major versions (PGVAULT_PG_VERSION)")
    config.addinivalue_line("markers", "server_independent: pgvault's own logic, for which the server only "
                                       "supplies segments or a cluster; the version matrix (tests/CMakeLists.txt, "
                                       "-m 'not server_independent') runs it on 15 only")
    # SIGTERM (e.g. from a CI runner) would end Python without running fixture teardowns or atexit
    # handlers; turn it into KeyboardInterrupt so the servers are stopped and temp dirs removed.
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, on_sigterm)
    # The tools are quiet (warnings only) when stderr is not a terminal; the tests read their info lines.
    # test_operations.py checks the quiet default with this variable removed.
    os.environ.setdefault("PGVAULT_LOG_LEVEL", "info")


# --- the run's own temp directory, and the tools' default locations left alone ------------------------

def start_run_tmpdir(config):
    """A fresh directory for this pytest process (ctest runs two at a time: each has its own), owned by
    the PostgreSQL user (the servers and the tools they run write there too), short (unix socket paths):
    $TMPDIR of every child from now on, and pytest's basetemp unless --basetemp names one."""
    python_tmp = tempfile.gettempdir()  # fixed from now on: Python's own temp files stay there
    base = os.environ.get("PGVAULT_TEST_TMPDIR") or python_tmp
    config.pgvault_default_roots = default_locations()  # of the environment the run was started with
    config.pgvault_defaults = snapshot(config.pgvault_default_roots)  # before any tool runs
    config.pgvault_started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="pgvault-run-", dir=base))
    chown_to(tmp)
    config.pgvault_run_tmpdir = tmp
    config.pgvault_saved_env = {k: os.environ.get(k) for k in ("TMPDIR", "XDG_RUNTIME_DIR")}
    os.environ["TMPDIR"] = str(tmp)
    os.environ.pop("XDG_RUNTIME_DIR", None)
    if config.option.basetemp is None:
        config.option.basetemp = str(tmp / "pytest")


def end_run_tmpdir(config):
    tmp = getattr(config, "pgvault_run_tmpdir", None)
    if tmp is None:
        return
    for key, value in config.pgvault_saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if not os.environ.get("PGVAULT_TEST_KEEP"):
        remove_tree(tmp)


def default_locations() -> list[Path]:
    """Where the tools keep files of their own when no config names a folder, for the users the tests run
    them as: the S3 capability cache's directory (common/storage/s3/s3_caps.cpp default_file) and the
    local state's (common/repo/local_state.cpp, common/archive/spool.cpp)."""
    uids = sorted({os.geteuid(), user_ids(PG_USER)[0]})
    tmp_roots = sorted({"/tmp", os.environ.get("TMPDIR") or "/tmp"})
    paths = [Path(t, f"pgvault-{uid}") for t in tmp_roots for uid in uids]
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(os.environ["XDG_RUNTIME_DIR"], "pgvault"))
    paths += [Path("/var/tmp", f"pgvault-{uid}") for uid in uids]
    return paths + [Path("/var/lib/pgvault/state"), Path("/var/lib/pgvault/owed")]


def snapshot(roots: list[Path]) -> dict[str, int]:
    """Every file and directory under ``roots`` (those that exist), with its mtime in nanoseconds."""
    seen = {}
    for root in roots:
        for top, dirs, files in os.walk(root):
            for path in [top] + [os.path.join(top, name) for name in dirs + files]:
                try:
                    seen[path] = os.lstat(path).st_mtime_ns
                except OSError:
                    pass
    return seen


def other_runs_only(capability_file: str, since: float) -> bool:
    """Whether every entry written to an S3 capability cache since ``since`` names a bucket of another
    test process (helpers.repo names them pgvault-<pid>-<n>): a test run beside this one (ctest runs two
    at a time; other checkouts may run theirs), not this one."""
    try:
        entries = [line.split() for line in Path(capability_file).read_text().splitlines()]
    except OSError:
        return False
    buckets = [e[3] for e in entries if len(e) == 4 and e[0].isdigit() and int(e[0]) >= int(since)]
    pids = [re.fullmatch(r"pgvault-(\d+)-\d+", b) for b in buckets]
    return bool(pids) and all(m is not None and int(m[1]) != os.getpid() for m in pids)


@pytest.fixture(scope="session", autouse=True)
def default_locations_untouched(request):
    """Fails the session (at the last test's teardown) when this run created a file at one of the tools'
    default locations, or wrote to an S3 capability cache there: a config written without the
    workspace's folders, or a tool started without the run's TMPDIR. Files that existed before may be an
    operator's in use (only new ones count), and a capability cache's entries name their buckets (those
    of other test runs do not count); a new state folder made by another program at the same time (a run
    of a checkout without these safeguards, scripts/demo.sh of an older checkout) is named too."""
    yield
    before = request.config.pgvault_defaults
    after = snapshot(request.config.pgvault_default_roots)
    caches = [p for p, mtime in after.items() if p.endswith("/s3-capabilities") and before.get(p) != mtime]
    changed = sorted({p for p in after if p not in before} | set(caches))
    for cache in caches:
        if other_runs_only(cache, request.config.pgvault_started):
            changed = [p for p in changed if p not in (cache, os.path.dirname(cache))]
    if changed:
        pytest.fail("this run created files at the tools' default locations, outside the test "
                    "workspaces (a config without local_dirs? a tool without the run's TMPDIR?):\n  "
                    + "\n  ".join(changed), pytrace=False)


def pytest_report_header(config):
    return f"PostgreSQL {PG_VERSION} servers (PGVAULT_PG_VERSION)"


def pytest_runtest_setup(item):
    for mark in item.iter_markers("pg_versions"):
        low, high = mark.kwargs.get("min", 15), mark.kwargs.get("max")
        if PG_VERSION < low or (high is not None and PG_VERSION > high):
            pytest.skip(f"needs PostgreSQL {low} to {high or 'newest'}, this run has {PG_VERSION}")


@pytest.fixture(scope="session")
def pg_version():
    """The major version of the PostgreSQL servers of this run (PGVAULT_PG_VERSION, default 15)."""
    return PG_VERSION


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def workspace(request):
    """A :class:`helpers.pg.Workspace`, closed (servers stopped, dir removed) after the test."""
    with Workspace() as ws:
        yield ws
        failed = any(getattr(request.node, f"rep_{when}", None) is not None
                     and getattr(request.node, f"rep_{when}").failed for when in ("setup", "call"))
        if failed:
            for cluster in ws.clusters:
                print(f"\n===== server log {cluster.log_path} (last lines) =====\n"
                      f"{cluster.log_tail(80)}")


@pytest.fixture
def pgvault_tools(workspace):
    """Lazily installed pgvault executables: ``pgvault_tools["wal-push"]`` -> path string."""
    return workspace.tools


# --- repositories ------------------------------------------------------------------------------------
# Every test that takes `repo` runs once per backend: the local directory and S3 (Swift's s3api).

BACKENDS = ["fs", "s3"]


@pytest.fixture(scope="session")
def s3_server():
    """One OpenStack Swift (s3api + tempauth) on 127.0.0.1 for the whole test file, stopped by PID."""
    from helpers.swift import SwiftS3
    with SwiftS3() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def repo(request, workspace):
    from helpers.repo import Repo
    if request.param == "s3":
        return Repo(workspace, "s3", s3=request.getfixturevalue("s3_server"))
    return Repo(workspace, "fs")


# --- real WAL to push by hand, and a directory that looks like one in recovery -----------------------

@pytest.fixture
def primary(workspace):
    """A running primary archiving nowhere ('true'), with a few real segments in pg_wal to push by hand."""
    pg = workspace.cluster("src")
    pg.initdb()
    pg.configure(wal_level="replica", archive_mode="on", archive_command="/bin/true", wal_keep_size="1GB")
    pg.start()
    pg.psql("CREATE TABLE t(x int)")
    names = []
    for _ in range(3):
        pg.psql("INSERT INTO t SELECT generate_series(1, 1000)")
        names.append(pg.switch_wal())
    pg.psql("CHECKPOINT")
    pg.segments = names
    return pg


def push(pg, repo, path, cwd=None, config=None):
    return pg.run([repo.tool("wal-push"), "--config", str(config or repo.config_path), str(path)],
                  cwd=cwd or pg.datadir)


def fetch(pg, repo, name, dest, cwd, config=None):
    return pg.run([repo.tool("wal-fetch"), "--config", str(config or repo.config_path), name, str(dest)], cwd=cwd)


@pytest.fixture
def recovery_dir(workspace):
    """A directory that looks like a data directory in archive recovery (wal-fetch's cwd)."""
    d = workspace.mkdir("recovering", mode=0o700)
    (d / "pg_wal").mkdir()
    (d / "recovery.signal").write_text("")
    chown_to(d, recursive=True)
    return d

