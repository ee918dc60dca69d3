"""wal-push into two repositories at once (issue 14): a local fs repository and an S3 one (Swift s3api
through the fault proxy, helpers/faultproxy.py).

With S3 allowed to lag (required = false) an S3 outage never stalls archiving into fs: the files S3
missed are recorded in its owed queue ([push] owed_dir, one folder per repository) and pushed later, by
later calls or `wal-push --catch-up`, read back from the fs repository. A call waits on a lagging S3 for
a bounded time only, and after a failure the calls back off from it, even with its default timeouts. With S3 required, archiving
fails while S3 is down and resumes by itself. A bound on what may be owed fails the call, naming the
repository and the bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import push
from helpers.faultproxy import FaultProxy
from helpers.proc import PG_USER
from helpers.repo import Repo, local_dirs, wal_key, write_config

SEG_RE = r"^[0-9A-F]{24}$"


class TwoRepos:
    """An fs repository ("local") and an S3 one ("cloud", through `proxy`), in one config file."""

    def __init__(self, workspace, s3_server, proxy):
        self.workspace, self.proxy = workspace, proxy
        self.local = Repo(workspace, "fs", name="local")
        self.cloud = Repo(workspace, "s3", s3=s3_server, name="cloud")
        self.config_path = self.local.dir / "two.toml"
        self.cloud_settings = {"endpoint": proxy.endpoint, "timeout": 2, "connect_timeout": 1, "retry_time": 1,
                               "required": False}
        self.dirs = local_dirs(workspace, "two")  # spools, owed queue, local state
        self.owed_dir = Path(self.dirs["push"]["owed_dir"])
        self.push_settings = dict(self.dirs["push"], parallel=4)
        self.write()

    def write(self, **cloud):
        self.cloud_settings.update(cloud)
        write_config(self.config_path, {
            "repository": dict(self.local.settings["repository"], name="local"),
            "repositories.cloud": dict(self.cloud.settings["repository"], **self.cloud_settings),
            "push": self.push_settings, "fetch": dict(self.dirs["fetch"], prefetch=0), "check": self.dirs["check"]})

    @property
    def archive_command(self):
        return f"{self.workspace.tool('wal-push')} --config {self.config_path} %p"

    def tool(self, name, *args):
        return [self.workspace.tool(name), "--config", str(self.config_path), *args]

    def owed(self):
        """The owed entries of every queue folder, by repository folder (not the .retry-after back-off)."""
        out = {}
        for d in sorted(self.owed_dir.iterdir()):
            out[d.name.rsplit("-", 1)[0]] = sorted(f for f in os.listdir(d) if not f.startswith("."))
        return out

    def wal_names(self, repo):
        return {k.rsplit("/", 1)[1] for k in repo.keys("wal/") if not k.endswith(".idx")}

    def fetched(self, pg, name, repo_name, dest_dir):
        dest = dest_dir / f"{repo_name}-{name}"
        r = pg.run(self.tool("wal-fetch", "--repo", repo_name, name, str(dest)), cwd=dest_dir)
        assert r.rc == 0, r.stderr
        return dest.read_bytes()


@pytest.fixture
def two(workspace, s3_server):
    with FaultProxy(s3_server.port) as proxy:
        yield TwoRepos(workspace, s3_server, proxy)


def archiving_cluster(workspace, two, name="multi"):
    pg = workspace.cluster(name)
    pg.initdb()
    pg.configure(wal_level="replica", archive_mode="on", archive_command=two.archive_command,
                 max_wal_size="256MB")
    pg.start()
    return pg


def segments_in_both_identical(pg, two, recovery_dir):
    local, cloud = two.wal_names(two.local), two.wal_names(two.cloud)
    assert local == cloud
    for name in sorted(local):
        assert two.fetched(pg, name, "local", recovery_dir) == two.fetched(pg, name, "cloud", recovery_dir), name
    return local


def segment_names(names):
    return sorted(n for n in names if len(n) == 24)


def test_archives_into_both_under_pgbench(workspace, two, recovery_dir):
    pg = archiving_cluster(workspace, two)
    pg.pgbench_init(scale=1)
    pg.pgbench(["-T", "3", "-c", "2"])
    last = pg.switch_wal()
    stats = pg.wait_archived(last, timeout=60, fail_on_error=True)
    assert int(stats["failed_count"]) == 0
    names = segments_in_both_identical(pg, two, recovery_dir)
    assert last in names and len(segment_names(names)) >= 2
    assert all(not v for v in two.owed().values())


def test_s3_outage_lags_then_drains(workspace, two, recovery_dir):
    pg = archiving_cluster(workspace, two)
    pg.psql("CREATE TABLE t(x int)")
    first = pg.switch_wal()
    pg.wait_archived(first, timeout=30, fail_on_error=True)
    two.proxy.add(None, "refuse", times=10**6)   # S3 unreachable: every connection dropped
    missed = []
    for i in range(12):
        pg.psql(f"INSERT INTO t SELECT generate_series(1, {1000 + i})")
        missed.append(pg.switch_wal())
        if i == 6:
            two.proxy.clear()
            two.proxy.add(None, "status", status=503, times=10**6)  # then answering 503 to everything
    stats = pg.wait_archived(missed[-1], timeout=60, fail_on_error=True)
    assert int(stats["failed_count"]) == 0  # archiving into fs went on without a failure
    ready = [f for f in os.listdir(pg.datadir / "pg_wal" / "archive_status") if f.endswith(".ready")]
    assert ready == []  # nothing kept back in pg_wal for the lagging repository
    assert two.owed() == {"cloud": sorted(missed)}
    assert not (set(missed) & two.wal_names(two.cloud))
    assert set(missed) <= two.wal_names(two.local)

    two.proxy.clear()  # S3 is back: once the calls' back-off (30 s) ends they drain the queue, oldest first
    deadline = time.monotonic() + 90
    while two.owed()["cloud"] and time.monotonic() < deadline:
        pg.psql("INSERT INTO t VALUES (1)")
        pg.wait_archived(pg.switch_wal(), timeout=30, fail_on_error=True)
        time.sleep(2)  # a call every 2 s: fewer new files owed while the back-off lasts
    assert two.owed() == {"cloud": []}
    names = segments_in_both_identical(pg, two, recovery_dir)
    assert set(missed) <= names


def test_required_s3_fails_archiving_and_it_resumes(workspace, two):
    two.write(required=True)
    pg = archiving_cluster(workspace, two)
    two.proxy.add(None, "status", status=503, times=10**6)
    pg.psql("CREATE TABLE t(x int)")
    seg = pg.switch_wal()
    deadline = time.monotonic() + 30
    while int(pg.archiver_stats()["failed_count"]) == 0:
        assert time.monotonic() < deadline, pg.archiver_stats()
        time.sleep(0.2)
    assert not pg.is_archived(seg)
    assert seg not in two.wal_names(two.cloud)
    two.proxy.clear()
    pg.psql("CREATE TABLE woke(x int)")
    pg.switch_wal()  # wakes the archiver, which retries the failed file
    pg.wait_archived(seg, timeout=60)
    assert seg in two.wal_names(two.cloud) and seg in two.wal_names(two.local)
    assert all(not v for v in two.owed().values())


def test_owed_bound_fails_naming_repository_and_bound(primary, two):
    two.write(max_owed_segments=2)
    two.proxy.add(None, "refuse", times=10**6)
    s0, s1, s2 = primary.segments
    assert push(primary, two.local, f"pg_wal/{s0}", config=two.config_path).rc == 0
    assert push(primary, two.local, f"pg_wal/{s1}", config=two.config_path).rc == 0
    r = push(primary, two.local, f"pg_wal/{s2}", config=two.config_path)
    assert r.rc == 1, r.stderr
    assert "repository cloud" in r.stderr and "max_owed_segments = 2" in r.stderr, r.stderr
    assert two.owed() == {"cloud": [s0, s1]}
    # --catch-up while S3 is still down: non-zero, nothing lost from the queue.
    r = primary.run(two.tool("wal-push", "--catch-up"))
    assert r.rc == 1 and "cloud: 2" in r.stderr, r.stderr
    assert two.owed() == {"cloud": [s0, s1]}


def test_kill_during_catch_up_then_rerun(primary, two, recovery_dir):
    two.proxy.add(None, "refuse", times=10**6)
    for s in primary.segments:
        assert push(primary, two.local, f"pg_wal/{s}", config=two.config_path).rc == 0
    assert two.owed() == {"cloud": sorted(primary.segments)}
    two.proxy.clear()
    two.write(timeout=60)
    two.push_settings["parallel"] = 1
    two.write()
    two.proxy.add("PUT", "stall", times=1, path=primary.segments[1])
    proc = subprocess.Popen(two.tool("wal-push", "--catch-up"), cwd=primary.datadir, stderr=subprocess.PIPE,
                            user=PG_USER)
    deadline = time.monotonic() + 30
    while two.proxy.count(action="stall") == 0:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert primary.segments[1] in two.owed()["cloud"]  # not forgotten: never stored
    r = primary.run(two.tool("wal-push", "--catch-up"))
    assert r.rc == 0, r.stderr
    assert two.owed() == {"cloud": []}
    queue = next(two.owed_dir.iterdir())
    assert os.listdir(queue) == []  # the killed run's copy was removed too
    for s in primary.segments:
        local = (primary.datadir / "pg_wal" / s).read_bytes()
        assert two.fetched(primary, s, "cloud", recovery_dir) == local
        assert two.fetched(primary, s, "local", recovery_dir) == local
    assert set(primary.segments) <= two.wal_names(two.cloud)


def test_stalled_then_refusing_s3_with_default_timeouts_costs_the_calls_little(primary, two, recovery_dir):
    for key in ("timeout", "connect_timeout", "retry_time"):  # S3's defaults: 60 s, 10 s, 120 s
        del two.cloud_settings[key]
    two.write()
    segments = list(primary.segments)
    for _ in range(3):
        primary.psql("INSERT INTO t SELECT generate_series(1, 1000)")
        segments.append(primary.switch_wal())
    two.proxy.add(None, "stall", times=10**6)  # accepts, reads the request, never answers
    started = time.monotonic()
    for i, s in enumerate(segments):
        if i == 3:
            two.proxy.clear()
            two.proxy.add(None, "refuse", times=10**6)  # then drops every connection
        # Each call is cut off long before the old cost of a stalled S3 (a minute or more per call).
        r = primary.run(two.tool("wal-push", f"pg_wal/{s}"), timeout=25)
        assert r.rc == 0, r.stderr
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed
    assert two.owed() == {"cloud": sorted(segments)}
    assert set(segments) <= two.wal_names(two.local)

    two.proxy.clear()
    r = primary.run(two.tool("wal-push", "--catch-up"), timeout=60)
    assert r.rc == 0, r.stderr
    assert two.owed() == {"cloud": []}
    for s in segments:
        assert two.fetched(primary, s, "cloud", recovery_dir) == (primary.datadir / "pg_wal" / s).read_bytes(), s
