"""The container image (docker/Dockerfile), built and run with podman: PostgreSQL 15 in one container
archives through the image's wal-push into a repository on a bind-mounted directory, base-push takes a
backup there, a restore point is set and more is written; a second container restores the backup to that
point with pitr-prepare, recovers through wal-fetch, and holds exactly the data of the point. The image
runs as postgres, and its health check is archive-info --check.

Needs root, podman, buildah and debootstrap (scripts/setup.sh). The first build on a machine debootstraps
the base image (cached). The image installs a .deb packed (cpack -B, into a temp dir of its own: never
the package test's) from the Release build under test ($PGVAULT_BUILD), so nothing is compiled twice;
PGVAULT_CONTAINER_FROM_SOURCE=1 compiles pgvault in the Dockerfile's build stage instead (ccache: the
machine's cache is lent to it). The time taken is printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

import podman
from debian import REPO_ROOT, build_deb, sh
from helpers.pg import free_port

PGDATA = "/var/lib/postgresql/data"
REPO_PARENT = "/var/lib/pgvault"


@pytest.fixture(scope="module")
def image():
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("needs root and podman (scripts/setup.sh)")
    if os.environ.get("PGVAULT_CONTAINER_FROM_SOURCE") == "1":
        seconds = podman.build_image()
        print(f"image {podman.IMAGE} compiled and built in {seconds:.0f}s")
        return podman.IMAGE
    build = os.environ.get("PGVAULT_BUILD")
    if not build or not (Path(build) / "CPackConfig.cmake").is_file():
        pytest.fail("PGVAULT_BUILD must name a configured and built Release build directory (ctest sets it); "
                    "or PGVAULT_CONTAINER_FROM_SOURCE=1")
    with prebuilt_context_dir() as context_dir:
        deb = build_deb(Path(build), context_dir)
        seconds = podman.build_image(deb)
    print(f"image {podman.IMAGE} built from {deb.name} in {seconds:.0f}s")
    return podman.IMAGE


@contextlib.contextmanager
def prebuilt_context_dir():
    """A temp dir inside the build context (docker/, which Dockerfile.dockerignore keeps) for the .deb,
    ignored by git even if a killed run leaves it behind; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix=".prebuilt-", dir=REPO_ROOT / "docker"))
    try:
        (d / ".gitignore").write_text("*\n")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def host_dirs(image):
    """A temp dir with repository/, primary/ and restored/, owned by the image's postgres user."""
    uid = int(podman.run(image, "id", "-u", "postgres").strip())
    gid = int(podman.run(image, "id", "-g", "postgres").strip())
    base = Path(tempfile.mkdtemp(prefix="pgvault-image-"))
    os.chmod(base, 0o755)
    dirs = {}
    for name, mode in (("repository", 0o750), ("primary", 0o700), ("restored", 0o700)):
        d = base / name
        d.mkdir(mode=mode)
        os.chown(d, uid, gid)
        dirs[name] = d
    yield dirs
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def containers():
    """Names for the test's containers; every one of them is removed afterwards."""
    names = []

    def name(role: str) -> str:
        names.append(f"pgvault-test-{os.getpid()}-{role}")
        return names[-1]
    yield name
    for n in names:
        podman.remove(n)


def wait_until(what: str, check, timeout: float = 120, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{podman.logs(name)[-4000:] if name else ''}")
        time.sleep(0.5)


def psql(name: str, sql: str, check: bool = True) -> str:
    return podman.exec_(name, "psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql, check=check).strip()


def server(name: str, image: str, data: Path, repo: Path, port: int) -> None:
    """The image's default command (postgres) on `port` of 127.0.0.1, with the data and repository dirs."""
    podman.start(name, "-e", f"PGPORT={port}", "-v", f"{data}:{PGDATA}", "-v", f"{repo}:{REPO_PARENT}",
                 image, "postgres", "-c", "listen_addresses=127.0.0.1")
    wait_until("the server to accept connections",
               lambda: "accepting" in podman.exec_(name, "pg_isready", check=False), name=name)


def state(name: str) -> tuple[str, str]:
    return (psql(name, "SELECT count(*) || ':' || sum(x) FROM t"),
            psql(name, "SELECT coalesce(string_agg(step, ',' ORDER BY id), '') FROM marks"))


def test_image_archives_backs_up_and_restores_in_a_second_container(image, host_dirs, containers):
    info = json.loads(sh("podman", "image", "inspect", image))[0]
    config = info["Config"]
    assert config.get("User") == "postgres"
    # podman 4.3 shows a docker-format image's health check beside Config, not in it
    health = info.get("Healthcheck") or config.get("Healthcheck") or {}
    assert "archive-info --check" in " ".join(health.get("Test", []))

    primary = containers("primary")
    server(primary, image, host_dirs["primary"], host_dirs["repository"], free_port())
    assert psql(primary, "SHOW archive_command") == "wal-push %p"
    psql(primary, "CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 10000);"
                  "CREATE TABLE marks(id serial, step text)")
    backup = json.loads(podman.exec_(primary, "base-push", "--json", timeout=600))
    psql(primary, "INSERT INTO marks(step) VALUES ('after-backup'); UPDATE t SET x = x + 1 WHERE x % 7 = 0")
    psql(primary, "SELECT pg_create_restore_point('image_point')")
    expected = state(primary)
    psql(primary, "INSERT INTO marks(step) VALUES ('after-point'); DELETE FROM t WHERE x < 100")
    last = psql(primary, "SELECT pg_walfile_name(pg_switch_wal())")
    wait_until(f"{last} to be archived",
               lambda: psql(primary, "SELECT coalesce(last_archived_wal >= '%s', false) FROM pg_stat_archiver" % last)
               == "t", name=primary)
    assert psql(primary, "SELECT failed_count FROM pg_stat_archiver") == "0"
    podman.remove(primary)

    mounts = ["-v", f"{host_dirs['restored']}:{PGDATA}", "-v", f"{host_dirs['repository']}:{REPO_PARENT}"]
    prepared = json.loads(podman.run(*mounts, image, "pitr-prepare", "--pgdata", PGDATA, "--json",
                                     "--target-name", "image_point", timeout=600))
    assert prepared["backup"] == backup["label"], prepared
    restored = containers("restored")
    server(restored, image, host_dirs["restored"], host_dirs["repository"], free_port())
    wait_until("recovery to end", lambda: psql(restored, "SELECT pg_is_in_recovery()", check=False) == "f",
               name=restored)
    assert state(restored) == expected
    assert "wal-fetch" in psql(restored, "SHOW restore_command")

    if "--check" in podman.run(image, "archive-info", "--help"):
        health = sh("podman", "--runtime", "runc", "healthcheck", "run", restored, check=False)
        assert health.strip() in ("", "healthy"), health
