"""wal-fetch checks identity end to end, and the prefetch spool belongs to one repository and system.

Issue 10, holes 1, 2 and 5 (the page-header half): a segment of another database system or of another
position is never handed to PostgreSQL (from the repository or from the prefetch spool); only the
repository of the cluster being recovered (global/pg_control) may answer "not in the archive"; a spool
left by another repository or system is never served; pitr-prepare and the end of recovery empty the
spool; a full spool warns once; SIGTERM and kill -9 leave no temporary file beside %p.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import fetch, push
from helpers.pitr import base_push, pitr_prepare, start_primary
from helpers.proc import PG_USER, chown_to, run, user_popen_kwargs
from helpers.repo import Repo, wal_key

ABORT = 200
DEST = "pg_wal/RECOVERYXLOG"


def spool_files(spool: Path) -> list[str]:
    """Prefetched segments (and their records) anywhere under a spool folder."""
    return sorted(p.name for p in spool.rglob("*") if p.is_file() and p.name[:24].isalnum()
                  and len(p.name) >= 24)


def wait_spool_settled(spool: Path, timeout: float = 60) -> list[str]:
    """Waits until no worker is fetching (no .inflight file, nothing changing) and returns the files."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        files = spool_files(spool)
        if files == last and files and not any(f.endswith(".inflight") for f in files):
            return files
        last = files
        time.sleep(0.5)
    return spool_files(spool)


def datadir_like(workspace, pg, name: str) -> Path:
    """A directory that looks like `pg`'s data directory in archive recovery: its global/pg_control,
    recovery.signal and an empty pg_wal (wal-fetch's working directory)."""
    d = workspace.mkdir(name, mode=0o700)
    (d / "pg_wal").mkdir()
    (d / "global").mkdir()
    shutil.copy(pg.datadir / "global" / "pg_control", d / "global" / "pg_control")
    (d / "recovery.signal").write_text("")
    chown_to(d, recursive=True)
    return d


def archive_segments(pg, count: int) -> list[str]:
    """`count` more segments written and archived; returns their names."""
    names = []
    for i in range(count):
        pg.psql(f"INSERT INTO t(x) SELECT generate_series(1, 2000) + {i}")
        names.append(pg.switch_wal())
    pg.wait_archived(names[-1], fail_on_error=True)
    return names


def cluster_with_segments(workspace, repo: Repo, name: str, count: int):
    pg = start_primary(workspace, repo, name, wal_keep_size="1GB")
    pg.psql("CREATE TABLE t(x int, who text)")
    return pg, archive_segments(pg, count)


def empty_repository(repo: Repo) -> None:
    if repo.backend == "fs":
        shutil.rmtree(repo.path)
    else:
        for k in repo.keys():
            repo.delete(k)
    repo.init()  # the operator creates the new repository, as for any other


# ---------------------------------------------------------------------------------------------------
# Hole 1: a spool prefetched for cluster A is never served to cluster B's recovery.
# ---------------------------------------------------------------------------------------------------

def test_stale_spool_of_another_system_is_never_served(workspace, repo):
    repo.update({"fetch": {"prefetch": 8}})
    spool = Path(repo.settings["fetch"]["spool"])
    a, a_segs = cluster_with_segments(workspace, repo, "a", 10)
    # wal-fetch run by hand in a folder holding recovery.signal (no pg_control): the worker fills the spool.
    by_hand = workspace.mkdir("by-hand", mode=0o700)
    (by_hand / "pg_wal").mkdir()
    (by_hand / "recovery.signal").write_text("")
    chown_to(by_hand, recursive=True)
    r = fetch(a, repo, a_segs[0], DEST, by_hand)
    assert r.rc == 0, r.stderr
    assert len(wait_spool_settled(spool)) >= 8
    a.stop()

    # The repository is deleted; cluster B archives into the same place with the same config.
    empty_repository(repo)
    b = start_primary(workspace, repo, "b")
    b.psql("CREATE TABLE t(x int, who text)")
    base_push(b, repo)
    archive_segments(b, 8)
    expected = b.scalar("SELECT count(*) || ':' || sum(x) FROM t")
    b.stop()

    # The spool still holds A's files under B's names; a recovery of B must never be handed one.
    restored = workspace.cluster("restored")
    pr = pitr_prepare(repo, restored.datadir)
    assert pr.rc == 0, pr.stderr
    restored.configure(archive_mode="off")
    restored.start(wait=False)
    restored.wait_for_recovery_end(timeout=300)
    assert restored.scalar("SELECT count(*) || ':' || sum(x) FROM t") == expected
    assert "different database system" not in restored.log_text()


def test_spool_shared_by_two_repositories_never_mixes(workspace, repo):
    """Two configs (two clusters, two repositories) with one explicit [fetch] spool."""
    shared = workspace.mkdir("shared-spool")
    chown_to(shared)
    repo.update({"fetch": {"prefetch": 4, "spool": str(shared)}})
    other = Repo(workspace, repo.backend, s3=repo.s3, name="other",
                 settings={"fetch": {"prefetch": 4, "spool": str(shared)}})
    a, a_segs = cluster_with_segments(workspace, repo, "a", 5)
    b, b_segs = cluster_with_segments(workspace, other, "b", 5)
    assert a_segs[:3] == b_segs[:3]  # the same names, different systems
    a_dir, b_dir = datadir_like(workspace, a, "a-rec"), datadir_like(workspace, b, "b-rec")

    r = fetch(a, repo, a_segs[0], DEST, a_dir)
    assert r.rc == 0, r.stderr
    assert wait_spool_settled(shared)  # A's next segments are prefetched
    for name in b_segs[1:3]:
        r = fetch(b, other, name, DEST, b_dir)
        assert r.rc == 0, r.stderr
        assert (b_dir / DEST).read_bytes() == (b.datadir / "pg_wal" / name).read_bytes(), name
    wait_spool_settled(shared)
    r = fetch(a, repo, a_segs[1], DEST, a_dir)
    assert r.rc == 0, r.stderr
    assert (a_dir / DEST).read_bytes() == (a.datadir / "pg_wal" / a_segs[1]).read_bytes()


# ---------------------------------------------------------------------------------------------------
# Holes 2 and 5: identity and position of every segment handed over.
# ---------------------------------------------------------------------------------------------------

def test_fetch_refuses_foreign_and_misplaced_segments(primary, repo, workspace):
    repo.update({"fetch": {"prefetch": 0}})  # every call reads the repository (the spool: tests above)
    s0, s1 = primary.segments[0], primary.segments[1]
    for s in (s0, s1):
        assert push(primary, repo, f"pg_wal/{s}").rc == 0
    rec = datadir_like(workspace, primary, "rec")

    def refused(name, needle, config=None):
        r = fetch(primary, config or repo, name, DEST, rec)
        assert r.rc == ABORT, (name, r.rc, r.stderr)
        assert needle in r.stderr, r.stderr
        assert not (rec / DEST).exists()
        (rec / "standby.signal").write_text("")
        try:
            r = fetch(primary, config or repo, name, DEST, rec)
            assert r.rc == 1 and needle in r.stderr, (r.rc, r.stderr)  # a standby retries, the reason logged
        finally:
            (rec / "standby.signal").unlink()
        assert not [p for p in (rec / "pg_wal").iterdir()], list((rec / "pg_wal").iterdir())

    # Hole 5: a valid object of s1 stored under s0's name.
    good = repo.read(wal_key(s0))
    repo.write(wal_key(s0), repo.read(wal_key(s1)))
    refused(s0, "position")
    repo.write(wal_key(s0), good)
    assert fetch(primary, repo, s0, DEST, rec).rc == 0
    (rec / DEST).unlink()

    # Another cluster, its own repository.
    other_pg = workspace.cluster("other")
    other_pg.initdb()
    other_pg.configure(wal_keep_size="1GB")
    other_pg.start()
    other_pg.psql("CREATE TABLE t(x int)")
    while other_pg.current_wal_file() <= s1:
        other_pg.psql("INSERT INTO t SELECT 1")
        other_pg.switch_wal()
    other = Repo(workspace, repo.backend, s3=repo.s3, name="other")
    assert push(other_pg, other, f"pg_wal/{s1}").rc == 0

    # Hole 2b: another system's valid object under the right name in the right repository.
    repo.write(wal_key(s1), other.read(wal_key(s1)))
    refused(s1, "database system")
    # Hole 2a: a config naming another cluster's repository neither serves nor answers "missing".
    refused(s1, "pg_control", config=other)
    refused("000000010000000000000077", "pg_control", config=other)
    r = fetch(primary, repo, "000000010000000000000077", DEST, rec)
    assert r.rc == 1, r.stderr


# ---------------------------------------------------------------------------------------------------
# Clearing: pitr-prepare empties the spool, a recovery that stops at a target leaves nothing behind.
# ---------------------------------------------------------------------------------------------------

def test_pitr_prepare_and_a_targeted_recovery_leave_the_spool_empty(workspace):
    repo = Repo(workspace, "fs", settings={"fetch": {"prefetch": 8}})
    spool = Path(repo.settings["fetch"]["spool"])
    pg, _ = cluster_with_segments(workspace, repo, "p", 1)
    start_wal = base_push(pg, repo)["start_wal"]
    archive_segments(pg, 2)
    pg.psql("SELECT pg_create_restore_point('here')")
    expected = pg.scalar("SELECT count(*) FROM t")
    archive_segments(pg, 12)
    pg.stop()

    rec = datadir_like(workspace, pg, "by-hand")
    assert fetch(pg, repo, start_wal, DEST, rec).rc == 0
    assert wait_spool_settled(spool)
    restored = workspace.cluster("restored")
    pr = pitr_prepare(repo, restored.datadir, "--target-name", "here")
    assert pr.rc == 0, pr.stderr
    assert spool_files(spool) == []
    restored.configure(archive_mode="off")
    restored.append_conf(f"restore_command = 'PGVAULT_LOG_LEVEL=debug {repo.restore_command}'",
                         filename="postgresql.auto.conf")
    restored.start(wait=False)
    restored.wait_for_recovery_end(timeout=300)
    assert restored.scalar("SELECT count(*) FROM t") == expected
    assert "from the prefetch spool" in restored.log_text()
    deadline = time.monotonic() + 20
    while spool_files(spool) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert spool_files(spool) == []


def test_full_spool_warns_once(workspace, primary):
    spool = workspace.mkdir("small-spool")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m,mode=0700", "tmpfs", str(spool)]).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        chown_to(spool)
        repo = Repo(workspace, "fs", settings={"fetch": {"prefetch": 4, "spool": str(spool)}})
        names = archive_segments(primary, 6)
        for name in names:
            assert push(primary, repo, f"pg_wal/{name}").rc == 0
        rec = datadir_like(workspace, primary, "rec")
        warnings = 0
        for name in names[:4]:
            r = fetch(primary, repo, name, DEST, rec)  # returns when the detached worker closed stderr
            assert r.rc == 0, r.stderr
            assert (rec / DEST).read_bytes() == (primary.datadir / "pg_wal" / name).read_bytes()
            warnings += r.stderr.count("prefetch of")
        assert warnings == 1
    finally:
        time.sleep(0.5)
        subprocess.run(["umount", "-l", str(spool)])


# ---------------------------------------------------------------------------------------------------
# No temporary file beside %p after SIGTERM (PostgreSQL's fast shutdown) or kill -9.
# ---------------------------------------------------------------------------------------------------

def _stopped_mid_write(pg, repo: Repo, name: str, rec: Path, attempts: int = 40) -> subprocess.Popen:
    """Starts wal-fetch and SIGSTOPs it while its temporary file exists beside %p."""
    kw = user_popen_kwargs(PG_USER)
    for _ in range(attempts):
        p = subprocess.Popen([repo.tool("wal-fetch"), "--config", str(repo.config_path), name, DEST], cwd=rec,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        while p.poll() is None:
            if any(f.startswith(".pgvault-tmp.") for f in os.listdir(rec / "pg_wal")):
                os.kill(p.pid, signal.SIGSTOP)
                return p
        (rec / DEST).unlink(missing_ok=True)
    pytest.fail("never caught wal-fetch while it was writing")


def test_sigterm_and_kill_leave_no_temporary_file(primary, workspace):
    key = Repo(workspace, "fs", name="keys").write_key()  # a passphrase KDF widens the window to catch
    repo = Repo(workspace, "fs", settings={"fetch": {"prefetch": 0},
                                           "encryption": {"method": "aes-256-gcm", "passphrase_file": str(key)}})
    s0 = primary.segments[0]
    assert push(primary, repo, f"pg_wal/{s0}").rc == 0
    rec = datadir_like(workspace, primary, "rec")
    temps = lambda: [f for f in os.listdir(rec / "pg_wal") if f.startswith(".pgvault-tmp.")]  # noqa: E731

    p = _stopped_mid_write(primary, repo, s0, rec)
    os.kill(p.pid, signal.SIGTERM)
    os.kill(p.pid, signal.SIGCONT)
    assert p.wait(timeout=30) != 0
    assert temps() == []
    assert not (rec / DEST).exists()

    p = _stopped_mid_write(primary, repo, s0, rec)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert len(temps()) == 1
    r = fetch(primary, repo, s0, DEST, rec)
    assert r.rc == 0, r.stderr
    assert temps() == []
    assert (rec / DEST).read_bytes() == (primary.datadir / "pg_wal" / s0).read_bytes()
