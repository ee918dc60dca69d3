"""wal-fetch and pitr-prepare with several repositories in one config (issue 14): a local directory and
S3 (Swift's s3api, through the fault proxy of helpers/faultproxy.py).

wal-fetch tries the repositories in configured order: a segment the first lacks, a corrupt copy in the
first, or a first repository that cannot be reached is served from the second; exit 1 ("not in the
archive") only when every repository says so, and when one failed while the others say "missing" it
is an error (200 in archive recovery, 1 on a standby). pitr-prepare restores from the first repository
or the one --repo names, and recovery reaches exactly the primary's data.
"""

from __future__ import annotations

import copy
import time

import pytest

from conftest import fetch, push
from helpers.faultproxy import FaultProxy
from helpers.pitr import base_push, pitr_prepare, recover
from helpers.repo import Repo, local_dirs, wal_key, write_config

ABORT = 200


def both(workspace, first: Repo, second: Repo, second_name: str, prefetch: int = 8) -> Repo:
    """A Repo whose config names `first` as [repository] and `second` as [repositories.<second_name>]
    (its tools act on both; raw object access stays `first`'s)."""
    conf = workspace.mkdir("both-conf", mode=0o755) / "pgvault.toml"
    settings = {"repository": first.settings["repository"], f"repositories.{second_name}": second.settings["repository"],
                **local_dirs(workspace, "both")}  # spools, owed queue, local state
    settings["fetch"]["prefetch"] = prefetch
    write_config(conf, settings)
    view = copy.copy(first)
    view.config_path = conf
    return view


@pytest.fixture
def s3proxied(workspace, s3_server):
    """An S3 repository reached through a fault proxy, with short timeouts and retries."""
    with FaultProxy(s3_server.port) as proxy:
        repo = Repo(workspace, "s3", s3=s3_server, name="cloud")
        repo.update({"repository": {"endpoint": proxy.endpoint, "timeout": 2, "connect_timeout": 1,
                                    "retry_time": 3}})
        repo.proxy = proxy
        yield repo


def fingerprint(pg) -> tuple[str, str]:
    return (pg.scalar("SELECT md5(string_agg(x::text, ',' ORDER BY x)) FROM t"), pg.scalar("SELECT count(*) FROM t"))


def test_recovery_from_either_repository_with_copies_missing_or_corrupt_in_the_first(workspace, s3_server):
    local = Repo(workspace, "fs", name="local")
    cloud = Repo(workspace, "s3", s3=s3_server, name="cloud")
    multi = both(workspace, local, cloud, "cloud")
    pg = workspace.cluster("primary")
    pg.initdb(checksums=True)
    pg.configure(wal_level="replica", archive_mode="on", max_wal_size="1GB", checkpoint_timeout="30min",
                 archive_command=f"{local.archive_command} && {cloud.archive_command}")
    pg.start()
    pg.psql("CREATE TABLE t(x int)")
    base_push(pg, local)
    base_push(pg, cloud)
    after = []
    for i in range(4):
        pg.psql(f"INSERT INTO t SELECT generate_series({i * 1000}, {i * 1000 + 999})")
        after.append(pg.switch_wal())
    pg.wait_archived(after[-1], fail_on_error=True)
    expected = fingerprint(pg)

    # From the first repository (the default), which then loses one segment and holds a corrupt copy
    # of another: both come from the second.
    restored = workspace.cluster("from-local")
    res = pitr_prepare(multi, restored.datadir)
    assert res.rc == 0, res.stderr
    assert "--repo" not in (restored.datadir / "postgresql.auto.conf").read_text()
    local.delete(wal_key(after[1]))
    local.flip_byte(wal_key(after[2]), 100)
    restored.configure(archive_mode="off")
    restored.start(wait=False)
    restored.wait_for_recovery_end()
    assert fingerprint(restored) == expected
    restored.stop()

    # From the second repository alone (--repo): its backup and its WAL.
    from_cloud, summary = recover(workspace, multi, "from-cloud", "--repo", "cloud")
    assert "--repo cloud" in (from_cloud.datadir / "postgresql.auto.conf").read_text()
    assert fingerprint(from_cloud) == expected


def test_fetch_falls_through_and_is_missing_only_when_every_repository_says_so(primary, s3proxied, recovery_dir,
                                                                               workspace):
    local = Repo(workspace, "fs", name="local")
    s0, s1, s2 = primary.segments
    for repo in (s3proxied, local):
        assert push(primary, repo, f"pg_wal/{s0}").rc == 0
    assert push(primary, local, f"pg_wal/{s1}").rc == 0  # the cloud lacks s1
    multi = both(workspace, s3proxied, local, "local", prefetch=0)
    dest = recovery_dir / "pg_wal/RECOVERYXLOG"

    def wal_fetch(name, *args):
        dest.unlink(missing_ok=True)
        return primary.run([multi.tool("wal-fetch"), "--config", str(multi.config_path), *args, name, str(dest)],
                           cwd=recovery_dir)

    # The first lacks it: served from the second.
    r = wal_fetch(s1)
    assert r.rc == 0, r.stderr
    assert dest.read_bytes() == (primary.datadir / "pg_wal" / s1).read_bytes()
    # The first's copy arrives corrupt: never handed over; the second's is.
    s3proxied.proxy.add("GET", "corrupt_response", times=1000, path=s0)
    r = wal_fetch(s0)
    assert r.rc == 0, r.stderr
    assert dest.read_bytes() == (primary.datadir / "pg_wal" / s0).read_bytes()
    s3proxied.proxy.clear()
    # Neither has it: the end of the archive.
    r = wal_fetch(s2)
    assert r.rc == 1, r.stderr
    assert not dest.exists()
    # --repo NAME reads that one only.
    assert wal_fetch(s1, "--repo", "primary").rc == 1
    # The first cannot be reached: what the second holds is served, and what it lacks is an error.
    s3proxied.proxy.stop()
    r = wal_fetch(s0)
    assert r.rc == 0, r.stderr
    assert dest.read_bytes() == (primary.datadir / "pg_wal" / s0).read_bytes()
    r = wal_fetch(s2)
    assert r.rc == ABORT, r.stderr
    assert not dest.exists()
    assert "no repository could serve" in r.stderr
    # While the first is down, a segment the second holds costs one failed connect, not the first's
    # retries (8 of them, up to retry_time = 60 s here): only when none serves is every repository tried
    # again with its own.
    s3proxied.update({"repository": {"retry_time": 60}})
    multi = both(workspace, s3proxied, local, "local", prefetch=0)
    started = time.monotonic()
    r = wal_fetch(s0)
    assert r.rc == 0, r.stderr
    assert time.monotonic() - started < 8, r.stderr  # its 8 retries alone would take ~20 s
    assert dest.read_bytes() == (primary.datadir / "pg_wal" / s0).read_bytes()
    s3proxied.update({"repository": {"retry_time": 3}})
    multi = both(workspace, s3proxied, local, "local", prefetch=0)
    (recovery_dir / "recovery.signal").unlink()
    (recovery_dir / "standby.signal").write_text("")
    r = wal_fetch(s2)
    assert r.rc == 1, r.stderr  # a standby falls back to streaming and retries
