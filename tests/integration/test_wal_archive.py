"""wal-push and wal-fetch against a real PostgreSQL 15, on every repository backend.

Covers the foundation contract (docs/EXIT-CODES.md): durable pushes, identical re-push succeeds,
different content is refused, foreign clusters are refused, fetch is verified and atomic, "missing" only
means missing, every other error aborts archive recovery (or reads as missing on a standby), crash
safety of an interrupted push, and a full archive-and-recover cycle with exact data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import fetch, push
from helpers.proc import PG_USER, chown_to, run, user_popen_kwargs
from helpers.repo import Repo, wal_key

ABORT = 200  # wal-fetch's "abort recovery" code (> 125)

SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")


def pgbench_state(pg) -> tuple[str, str, str]:
    return (pg.scalar("SELECT count(*) FROM pgbench_accounts"),
            pg.scalar("SELECT sum(abalance) FROM pgbench_accounts"),
            pg.scalar("SELECT count(*) FROM pgbench_history"))


def archived_segments(repo: Repo) -> list[str]:
    return [k.rsplit("/", 1)[-1] for k in repo.keys("wal/") if SEGMENT_RE.match(k.rsplit("/", 1)[-1])]


def start_primary(workspace, repo: Repo, name="primary"):
    pg = workspace.cluster(name)
    pg.initdb(checksums=True)
    pg.configure(wal_level="replica", archive_mode="on", archive_command=repo.archive_command,
                 max_wal_size="1GB", checkpoint_timeout="30min")
    pg.start()
    return pg


# ---------------------------------------------------------------------------------------------------
# The full cycle with a real server: archive through wal-push, recover through wal-fetch.
# ---------------------------------------------------------------------------------------------------

def test_archive_and_recover_exact_data(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=5)
    replica = workspace.cluster("restored")
    pg.basebackup(replica.datadir)  # pg_basebackup -X none: every later byte must come from the archive
    start = pg.current_wal_file()
    while int(pg.current_wal_file()[-8:], 16) - int(start[-8:], 16) < 22:
        pg.pgbench(["-T", "2", "-c", "2"])
        pg.psql("INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now() FROM generate_series(1, 300000)")
        pg.switch_wal()
    last = pg.switch_wal()
    pg.wait_archived(last, fail_on_error=True)
    expected = pgbench_state(pg)
    stats = pg.archiver_stats()
    assert int(stats["failed_count"]) == 0, stats

    segments = archived_segments(repo)
    assert len(segments) >= 20, segments
    identity = repo.read("pgvault.json").decode()
    assert pg.controldata()["Database system identifier"] in identity

    replica.enable_recovery({"restore_command": repo.restore_command})
    replica.start()
    replica.wait_for_recovery_end(timeout=300)
    assert pgbench_state(replica) == expected
    restored = re.findall(r'restored log file "([0-9A-F]{24})" from archive', replica.log_text())
    assert len(restored) >= 15 and last in restored, restored


def test_repository_failure_mid_recovery_stops_recovery(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    replica = workspace.cluster("restored")
    pg.basebackup(replica.datadir)
    for _ in range(6):
        pg.psql("CREATE TABLE IF NOT EXISTS t(x int); INSERT INTO t SELECT generate_series(1, 10000)")
        pg.switch_wal()
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    segments = archived_segments(repo)
    victim = segments[len(segments) // 2 + 1]
    if repo.backend == "fs":
        os.chmod(repo.path / wal_key(victim), 0)  # unreadable for postgres (EACCES), not missing
    else:
        repo.flip_byte(wal_key(victim), 100)

    replica.enable_recovery({"restore_command": repo.restore_command})
    replica.start(wait=False)
    rc = replica.wait_exit(timeout=180)
    assert rc != 0
    log = replica.log_text()
    assert f'could not restore file "{victim}" from archive' in log, log[-3000:]
    assert "exit code 200" in log
    # It did not promote: no new timeline, control file still says recovery.
    assert "selected new timeline ID" not in log
    assert "archive recovery complete" not in log
    assert "in archive recovery" in replica.controldata()["Database cluster state"]


def test_standby_keeps_waiting_on_repository_errors(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.psql("CREATE TABLE t(x int)")
    standby = workspace.cluster("standby")
    pg.basebackup(standby.datadir)
    for _ in range(3):
        pg.psql("INSERT INTO t SELECT generate_series(1, 10000)")
        pg.switch_wal()
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    segments = archived_segments(repo)
    repo.flip_byte(wal_key(segments[-2]), 100)
    standby.enable_recovery({"restore_command": repo.restore_command}, standby=True)
    standby.start(wait=False)
    standby.wait_for_log(r"plaintext digest mismatch|authentication failed|corrupt", timeout=120)
    time.sleep(2)
    assert standby.is_running()
    assert "selected new timeline ID" not in standby.log_text()


# ---------------------------------------------------------------------------------------------------
# Command-line contract, on real WAL segments.
# ---------------------------------------------------------------------------------------------------

# `primary`, `recovery_dir`, `push` and `fetch` come from conftest.py (shared with the S3 fault tests).


@pytest.mark.server_independent
def test_push_relative_and_absolute_then_fetch_identical(primary, repo, recovery_dir):
    s0, s1 = primary.segments[0], primary.segments[1]
    r = push(primary, repo, f"pg_wal/{s0}")
    assert r.rc == 0, r.stderr
    r = push(primary, repo, primary.datadir / "pg_wal" / s1, cwd="/")
    assert r.rc == 0, r.stderr
    for s in (s0, s1):
        r = fetch(primary, repo, s, "pg_wal/RECOVERYXLOG", recovery_dir)
        assert r.rc == 0, r.stderr
        assert (recovery_dir / "pg_wal/RECOVERYXLOG").read_bytes() == (primary.datadir / "pg_wal" / s).read_bytes()
    assert not [p for p in (recovery_dir / "pg_wal").iterdir() if p.name.startswith(".pgvault-tmp")]


def test_version_from_the_wal_page_magic_or_a_clear_refusal(primary, workspace, pg_version):
    # Pushed from outside the data directory (no PG_VERSION to read), the repository's identity takes
    # the server's major version from the segment's page magic: this server's, whichever version it is.
    repo = Repo(workspace, "fs", name="by-magic")
    s0 = primary.segments[0]
    r = push(primary, repo, primary.datadir / "pg_wal" / s0, cwd="/")
    assert r.rc == 0, r.stderr
    info = primary.run(repo.cmd("archive-info", "--json"))
    assert json.loads(info.stdout)["identity"]["pg_version"] == pg_version, info.stdout + info.stderr

    # A segment of a release pgvault does not know (the page magic of a PostgreSQL 19, say) is refused
    # with that reason, never recorded as version 0.
    future = Repo(workspace, "fs", name="future")
    odd = workspace.mkdir("odd", mode=0o755) / s0
    data = bytearray((primary.datadir / "pg_wal" / s0).read_bytes())
    data[0:2] = struct.pack("<H", 0xD11A)
    odd.write_bytes(bytes(data))
    chown_to(odd)
    r = push(primary, future, odd, cwd="/")
    assert r.rc == 2, r.stderr
    assert "unknown WAL page magic 0xD11A (pgvault supports PostgreSQL 15 to 18)" in r.stderr
    assert not future.keys("wal/")


@pytest.mark.server_independent
def test_repush_identical_succeeds_different_is_refused(primary, repo, workspace):
    s0 = primary.segments[0]
    assert push(primary, repo, f"pg_wal/{s0}").rc == 0
    stored = repo.read(wal_key(s0))
    r = push(primary, repo, f"pg_wal/{s0}")
    assert r.rc == 0, r.stderr
    assert "already archived with identical content" in r.stderr
    assert repo.read(wal_key(s0)) == stored

    # Same name, different bytes (its header still right: a diverged copy): refused with both digests.
    other = workspace.path("other")
    other.mkdir()
    body = bytearray((primary.datadir / "pg_wal" / s0).read_bytes())
    body[100000:100016] = bytes(b ^ 0xFF for b in body[100000:100016])
    (other / s0).write_bytes(bytes(body))
    chown_to(other, recursive=True)
    r = push(primary, repo, other / s0)
    assert r.rc == 3, r.stderr
    digests = re.findall(r"sha256 ([0-9a-f]{64})", r.stderr)
    assert len(set(digests)) == 2, r.stderr
    assert repo.read(wal_key(s0)) == stored

    # Another segment renamed (its header says another position): refused before anything is stored,
    # under a name not archived yet too (wal-fetch would refuse it, and it would block the real file).
    later = "000000010000000000000077"
    shutil.copy(primary.datadir / "pg_wal" / primary.segments[1], other / later)
    chown_to(other, recursive=True)
    r = push(primary, repo, other / later)
    assert r.rc not in (0, 1), r.stderr
    assert "segment header says position" in r.stderr and "not archived" in r.stderr, r.stderr
    assert wal_key(later) not in repo.keys()


def test_history_partial_and_backup_files(primary, repo, recovery_dir, workspace):
    s0 = primary.segments[0]
    files = workspace.path("files")
    files.mkdir()
    (files / "00000002.history").write_text("1\t0/3000000\tno recovery target specified\n")
    shutil.copy(primary.datadir / "pg_wal" / s0, files / f"{s0}.partial")
    (files / f"{s0}.00000028.backup").write_text("START WAL LOCATION: 0/2000028\n")
    chown_to(files, recursive=True)
    for f in ("00000002.history", f"{s0}.partial", f"{s0}.00000028.backup"):
        r = push(primary, repo, files / f)
        assert r.rc == 0, r.stderr
        r = fetch(primary, repo, f, "pg_wal/RECOVERYHISTORY", recovery_dir)
        assert r.rc == 0, r.stderr
        assert (recovery_dir / "pg_wal/RECOVERYHISTORY").read_bytes() == (files / f).read_bytes()
    (files / "00000002.history").write_text("1\t0/4000000\tsomething else\n")
    assert push(primary, repo, files / "00000002.history").rc == 3


@pytest.mark.server_independent
def test_foreign_cluster_is_refused(primary, repo, workspace):
    assert push(primary, repo, f"pg_wal/{primary.segments[0]}").rc == 0
    before = {k: repo.read(k) for k in repo.keys()}
    other = workspace.cluster("other")
    other.initdb()
    other.start()
    other.psql("CREATE TABLE t(x int)")
    for _ in range(4):
        seg = other.switch_wal()
        r = push(other, repo, f"pg_wal/{seg}")
        assert r.rc == 4, r.stderr
        assert "database system" in r.stderr
    assert {k: repo.read(k) for k in repo.keys()} == before


@pytest.mark.server_independent
def test_bad_input_gets_one_clear_line(primary, repo, workspace):
    s0 = primary.segments[0]
    cases = []
    r = push(primary, repo, "pg_wal/000000010000000000000099")
    cases.append((r, 2, "000000010000000000000099"))
    r = push(primary, repo, "postgresql.conf")
    cases.append((r, 2, "not a WAL file name"))
    bad = workspace.mkdir("badconf", mode=0o755)
    for text, needle in [("[repository]\npath = \"/x\"\nbogus = 1\n", "line 3"),
                         ("[compression]\nlevel = 99\n", "level"),
                         ("[repository]\ntype = \"ftp\"\n", "type")]:
        cfg = bad / "c.toml"
        cfg.write_text(text)
        os.chmod(cfg, 0o644)
        cases.append((push(primary, repo, f"pg_wal/{s0}", config=cfg), 2, needle))
    key = repo.write_key("abcd", name="shortkey")
    cfg = Repo(workspace, "fs", name="r2").update({"encryption": {"method": "aes-256-gcm", "key_file": str(key)}})
    cases.append((push(primary, cfg, f"pg_wal/{s0}"), 2, "shortkey"))
    key = repo.write_key(name="openkey")
    os.chmod(key, 0o644)
    cfg = Repo(workspace, "fs", name="r3").update({"encryption": {"method": "aes-256-gcm", "key_file": str(key)}})
    r = push(primary, cfg, f"pg_wal/{s0}")
    cases.append((r, 2, "readable by group or others"))
    root_owned = workspace.path("rootrepo")
    root_owned.mkdir(mode=0o755)  # owned by root: postgres cannot write
    cfg = Repo(workspace, "fs", name="r4", init=False)
    cfg.update({"repository": {"path": str(root_owned)}})
    cfg.init(user=None)  # as root: a repository postgres cannot write to
    cases.append((push(primary, cfg, f"pg_wal/{s0}"), 1, str(root_owned)))
    for r, code, needle in cases:
        assert r.rc == code, (code, needle, r.stderr)
        assert needle in r.stderr, (needle, r.stderr)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1, r.stderr


def test_fetch_errors_abort_recovery_or_read_as_missing_on_standby(primary, repo, recovery_dir, workspace):
    s0, s1 = primary.segments[0], primary.segments[1]
    assert push(primary, repo, f"pg_wal/{s0}").rc == 0
    assert push(primary, repo, f"pg_wal/{s1}").rc == 0
    dest = "pg_wal/RECOVERYXLOG"
    # Not in the archive: 1, quietly.
    r = fetch(primary, repo, "000000010000000000000077", dest, recovery_dir)
    assert r.rc == 1 and r.stderr == "", r.stderr

    def expect_error(needle, config=None):
        r = fetch(primary, repo, s0, dest, recovery_dir, config=config)
        assert r.rc == ABORT, r.stderr
        assert needle in r.stderr, r.stderr
        assert not (recovery_dir / dest).exists()
        (recovery_dir / "standby.signal").write_text("")
        try:
            r = fetch(primary, repo, s0, dest, recovery_dir, config=config)
            assert r.rc == 1, r.stderr
            assert needle in r.stderr, r.stderr
        finally:
            (recovery_dir / "standby.signal").unlink()
        assert not (recovery_dir / dest).exists()

    key = wal_key(s0)
    good = repo.read(key)
    repo.flip_byte(key, len(good) // 2)
    expect_error(key)
    repo.write(key, good[: len(good) // 2])
    expect_error("truncated")
    repo.write(key, good)

    broken = workspace.mkdir("broken", mode=0o755) / "c.toml"
    broken.write_text("[repository\n")
    os.chmod(broken, 0o644)
    expect_error("line 1", config=broken)
    cfg = Repo(workspace, "fs", name="nowhere", init=False)  # no repository there at all: not "missing"
    r = fetch(primary, cfg, s0, dest, recovery_dir)
    assert r.rc == ABORT and "pgvault.json" in r.stderr, r.stderr
    if repo.backend == "fs":
        os.chmod(repo.path / "wal", 0)
        try:
            expect_error("Permission denied")
            r = fetch(primary, repo, "000000010000000000000077", dest, recovery_dir)
            assert r.rc == ABORT, r.stderr
        finally:
            os.chmod(repo.path / "wal", 0o750)
    # on_error forces either behaviour.
    repo.update({"fetch": {"on_error": "missing"}})
    repo.flip_byte(key, 50)
    assert fetch(primary, repo, s0, dest, recovery_dir).rc == 1
    (recovery_dir / "standby.signal").write_text("")
    repo.update({"fetch": {"on_error": "abort"}})
    assert fetch(primary, repo, s0, dest, recovery_dir).rc == ABORT
    (recovery_dir / "standby.signal").unlink()
    assert fetch(primary, repo, s1, dest, recovery_dir).rc == 0


@pytest.mark.server_independent
@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("encryption", ["none", "key", "passphrase"])
def test_every_codec_combination_reads_back_under_any_config(primary, repo, recovery_dir, compression, encryption):
    key = repo.write_key()
    pf = repo.dir / "pass"
    pf.write_text("correct horse battery staple\n")
    os.chmod(pf, 0o600)
    chown_to(pf)
    enc = {"none": {"method": "none", "key_file": str(key)},
           "key": {"method": "aes-256-gcm", "key_file": str(key)},
           "passphrase": {"method": "aes-256-gcm", "passphrase_file": str(pf)}}[encryption]
    repo.update({"compression": {"method": compression, "level": 5}, "encryption": enc})
    s0 = primary.segments[0]
    assert push(primary, repo, f"pg_wal/{s0}").rc == 0
    stored = repo.read(wal_key(s0))
    assert stored[:4] == b"PGVO"
    assert stored[5] == (1 if compression == "zstd" else 0)
    assert stored[6] == (0 if encryption == "none" else 1)
    if compression == "zstd":
        assert len(stored) < 16 * 1024 * 1024 / 2
    # Read back with a different compression setting: the object header decides.
    repo.update({"compression": {"method": "none" if compression == "zstd" else "zstd"}})
    r = fetch(primary, repo, s0, "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == 0, r.stderr
    assert (recovery_dir / "pg_wal/RECOVERYXLOG").read_bytes() == (primary.datadir / "pg_wal" / s0).read_bytes()
    if encryption != "none":
        wrong = repo.write_key("ff" * 32, name="wrongkey")
        repo.settings["encryption"].pop("passphrase_file", None)
        repo.update({"encryption": {"method": "aes-256-gcm", "key_file": str(wrong)}})
        r = fetch(primary, repo, s0, "pg_wal/RECOVERYXLOG2", recovery_dir)
        assert r.rc == ABORT, r.stderr
        assert not (recovery_dir / "pg_wal/RECOVERYXLOG2").exists()


@pytest.mark.server_independent
def test_kill_9_during_push_leaves_nothing_visible(primary, repo, workspace, recovery_dir):
    """A push killed while writing leaves no object that wal-fetch could see; the next push succeeds."""
    # A 1 GiB segment (a valid WAL segment size) with a real long page header, so the write takes a while.
    src = (primary.datadir / "pg_wal" / primary.segments[0]).read_bytes()
    header = bytearray(src[:8192])
    struct.pack_into("<I", header, 32, 1 << 30)
    struct.pack_into("<Q", header, 8, 1 << 30)  # the page address of segment 1 with 1 GiB segments
    big_dir = workspace.path("big")
    big_dir.mkdir()
    name = "000000010000000000000001"
    big = big_dir / name
    block = os.urandom(1 << 20)
    with open(big, "wb") as f:
        f.write(header + block[8192:])
        for _ in range(1023):
            f.write(block)
    chown_to(big_dir, recursive=True)
    repo.update({"compression": {"method": "none"}})
    cmd = [repo.tool("wal-push"), "--config", str(repo.config_path), str(big)]
    proc = subprocess.Popen(cmd, cwd=primary.datadir, stderr=subprocess.PIPE, **user_popen_kwargs(PG_USER))
    try:
        deadline = time.time() + 60
        started = False
        while time.time() < deadline and proc.poll() is None:
            if repo.backend == "fs":
                started = bool(repo.temp_files()) and any(os.path.getsize(t) > (64 << 20) for t in repo.temp_files())
            else:
                started = True
                time.sleep(1.5)  # well into the multipart upload
            if started:
                break
            time.sleep(0.02)
        assert started and proc.poll() is None, "push finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert wal_key(name) not in repo.keys()
    r = fetch(primary, repo, name, "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == 1, r.stderr  # not in the archive: no partial object is visible
    r = primary.run(cmd, timeout=300)
    assert r.rc == 0, r.stderr
    r = fetch(primary, repo, name, "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == 0, r.stderr
    assert (recovery_dir / "pg_wal/RECOVERYXLOG").read_bytes() == big.read_bytes()


# ---------------------------------------------------------------------------------------------------
# Look-ahead archiving ([push] parallel): each call also pushes the next .ready files.
# ---------------------------------------------------------------------------------------------------

def _load_until_segments(pg, count):
    pg.psql("CREATE TABLE IF NOT EXISTS filler(x text)")
    start = pg.current_wal_file()
    while True:
        pg.psql("INSERT INTO filler SELECT repeat(md5(random()::text), 40) FROM generate_series(1, 20000)")
        if int(pg.current_wal_file()[-8:], 16) - int(start[-8:], 16) >= count:
            break
    return pg.switch_wal()


def push_worker_pid(spool: Path) -> int | None:
    """The pid in the spool's push.lock (the detached push worker) while that process is alive."""
    for lock in spool.glob("*/push.lock"):
        text = lock.read_text().strip()
        if text.isdigit() and process_alive(int(text)):
            return int(text)
    return None


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_push_worker_gone(spool: Path, timeout: float = 15) -> None:
    """Waits until no push worker runs for ``spool`` (it stops ~1 s after the backlog is gone)."""
    deadline = time.time() + timeout
    while push_worker_pid(spool) and time.time() < deadline:
        time.sleep(0.1)
    assert push_worker_pid(spool) is None, "the push worker is still running"


def start_backlog(workspace, repo, segments: int):
    """A primary with look-ahead configured ([push] parallel = 4, a spool of the workspace) and no
    archive_command yet, so a backlog of at least `segments` .ready files built up (as on a busy server,
    or after an outage). Returns (pg, spool, the last segment of the backlog)."""
    spool = workspace.mkdir("push-spool")
    repo.update({"push": {"parallel": 4, "spool": str(spool)}})
    pg = workspace.cluster("primary")
    pg.initdb()
    pg.configure(wal_level="replica", archive_mode="on", max_wal_size="2GB", archive_command="")
    pg.start()
    return pg, spool, _load_until_segments(pg, segments)


def test_lookahead_archives_every_segment_exactly_once(workspace, repo):
    pg, spool, last = start_backlog(workspace, repo, 40)
    pg.configure(archive_command=f"PGVAULT_LOG_LEVEL=debug {repo.archive_command}")
    pg.reload()
    pg.psql("INSERT INTO filler SELECT repeat(md5(random()::text), 40) FROM generate_series(1, 20000)")
    pg.wait_archived(last, timeout=300, fail_on_error=True)
    wait_push_worker_gone(spool)  # it may still push files after `last` (and log them)
    stats = pg.archiver_stats()
    assert int(stats["failed_count"]) == 0, stats
    log = pg.log_text()
    archived = re.findall(r"archived ([0-9A-F]{24}) to ", log)
    ahead = re.findall(r"([0-9A-F]{24}) was archived ahead by an earlier call", log)
    assert len(archived) >= 40
    assert len(archived) == len(set(archived)), "a segment was uploaded twice"
    assert len(ahead) >= 10, "look-ahead never served a call"
    segments = archived_segments(repo)
    assert sorted(segments) == sorted(set(archived))
    # Every stored object decodes and matches what PostgreSQL wrote (checked by wal-fetch's verification).
    d = workspace.mkdir("check")
    (d / "recovery.signal").write_text("")
    chown_to(d, recursive=True)
    for s in segments:
        r = pg.run([repo.tool("wal-fetch"), "--config", str(repo.config_path), s, "out"], cwd=d)
        assert r.rc == 0, r.stderr


@pytest.mark.server_independent
def test_lookahead_survives_kill_9(workspace, repo):
    repo.update({"push": {"parallel": 4, "spool": str(workspace.mkdir("push-spool"))}})
    pg = workspace.cluster("primary")
    pg.initdb()
    pg.configure(wal_level="replica", archive_mode="on", max_wal_size="2GB",
                 archive_command=repo.archive_command)
    pg.start()
    pg.pgbench_init(scale=1)
    replica = workspace.cluster("restored")
    pg.basebackup(replica.datadir)
    killed = 0
    deadline = time.time() + 120
    pg.psql("CREATE TABLE filler(x text)")
    while killed < 5 and time.time() < deadline:
        pg.psql("INSERT INTO filler SELECT repeat(md5(random()::text), 40) FROM generate_series(1, 20000)")
        pids = subprocess.run(["pgrep", "-f", f"wal-push --config {repo.config_path}"],
                              capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    assert killed >= 1
    pg.pgbench(["-T", "3"])
    expected = pgbench_state(pg)
    filler = pg.scalar("SELECT count(*) FROM filler")
    pg.wait_archived(pg.switch_wal(), timeout=300)
    replica.enable_recovery({"restore_command": repo.restore_command})
    replica.start()
    replica.wait_for_recovery_end(timeout=300)
    assert pgbench_state(replica) == expected
    assert replica.scalar("SELECT count(*) FROM filler") == filler


# ---------------------------------------------------------------------------------------------------
# Prefetching recovery ([fetch] prefetch): a detached worker fetches the next segments ahead.
# ---------------------------------------------------------------------------------------------------

def test_prefetch_recovery_across_timeline_switch(workspace, repo):
    spool = workspace.mkdir("fetch-spool")
    repo.update({"fetch": {"prefetch": 8, "spool": str(spool)}})
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=2)
    first = workspace.cluster("first")
    second = workspace.cluster("second")
    pg.basebackup(first.datadir)
    pg.basebackup(second.datadir)
    pg.pgbench(["-T", "3"])
    pg.psql("INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now() FROM generate_series(1, 300000)")
    pg.psql("SELECT pg_create_restore_point('fork')")
    at_fork = pgbench_state(pg)
    pg.pgbench(["-T", "2"])  # timeline 1 goes on past the fork: none of this may reach timeline 2
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    pg.stop()

    # Recover to the fork point and promote: timeline 2, archiving into the same repository.
    first.configure(archive_command=repo.archive_command)
    first.enable_recovery({"restore_command": f"PGVAULT_LOG_LEVEL=debug {repo.restore_command}",
                           "recovery_target_name": "fork", "recovery_target_action": "promote"})
    first.start()
    first.wait_for_recovery_end(timeout=300)
    assert pgbench_state(first) == at_fork
    assert "restored" in first.log_text() and "from the prefetch spool" in first.log_text()
    first.pgbench(["-T", "3"])
    first.psql("INSERT INTO pgbench_history SELECT 2, 2, 2, 2, now() FROM generate_series(1, 300000)")
    first.wait_archived(first.switch_wal(), fail_on_error=True)
    expected = pgbench_state(first)
    assert "wal/00000002.history" in repo.keys()

    # From the same base backup, follow the history to the end of timeline 2.
    second.enable_recovery({"restore_command": f"PGVAULT_LOG_LEVEL=debug {repo.restore_command}",
                            "recovery_target_timeline": "latest"})
    second.start()
    second.wait_for_recovery_end(timeout=300)
    assert pgbench_state(second) == expected
    log = second.log_text()
    assert re.search(r'restored log file "00000002[0-9A-F]{16}" from archive', log)
    assert "from the prefetch spool" in log
    time.sleep(1)
    leftovers = [p.name for p in spool.rglob("*") if p.is_file() and p.name != "prefetch.lock"]
    assert leftovers == [], leftovers
