"""retention-prune against a real PostgreSQL 15, on every repository backend.

1. full_backups = 2 over three base backups with load between them: the oldest backup and exactly the WAL
   before the second backup's start are deleted; pitr-prepare to a time between the second and third
   backups and to latest both give the exact data.
2. The window rule with a faked clock (PGVAULT_TEST_NOW): the backups inside the window plus the newest
   one before its start are kept.
3. A crash right after the first manifest delete (PGVAULT_TEST_CRASH_AFTER): the repository verifies in
   between, and the next run finishes the job.
4. The lock: a second run while it is held fails naming the holder; a stale lock is taken over; a run
   whose lock is taken over mid-run (PGVAULT_TEST_TAKEOVER_AFTER) stops deleting at once and exits 3.
5. Policy errors are config errors (exit 2) and delete nothing.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from typing import Optional

import pytest

from helpers.pitr import (archive_info, base_push, create_marks, db_state, mark, recover, segments,
                          start_primary)
from helpers.proc import PG_USER, RunResult, make_dir, run

EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_TEST_CRASH = 9


def prune(repo, *args: str, now: Optional[int] = None, crash_after: Optional[str] = None,
          takeover_after: Optional[str] = None, timeout: float = 300) -> RunResult:
    """Runs retention-prune as the postgres user, with the test-only clock and hooks when given."""
    env = dict(os.environ)
    for var in ("PGVAULT_TEST_NOW", "PGVAULT_TEST_CRASH_AFTER", "PGVAULT_TEST_TAKEOVER_AFTER"):
        env.pop(var, None)
    if now is not None:
        env["PGVAULT_TEST_NOW"] = str(now)
    if crash_after is not None:
        env["PGVAULT_TEST_CRASH_AFTER"] = crash_after
    if takeover_after is not None:
        env["PGVAULT_TEST_TAKEOVER_AFTER"] = takeover_after
    return run(repo.cmd("retention-prune", *args), user=PG_USER, env=env, cwd="/", timeout=timeout)


def prune_plan(repo, *args: str, now: Optional[int] = None) -> dict:
    res = prune(repo, "--dry-run", "--json", *args, now=now)
    assert res.rc == 0, f"retention-prune --dry-run failed ({res.rc}): {res.stderr}"
    return json.loads(res.stdout)


def position(wal_name: str) -> str:
    """The segment position of a WAL file name (without the timeline), comparable as a string."""
    return wal_name[8:24]


def backup_keys(repo, label: str) -> list[str]:
    return repo.keys(f"backups/{label}/")


def wal_files(repo) -> list[str]:
    """Every WAL object's file name (segments, .partial, .backup, .history)."""
    return sorted(k.rsplit("/", 1)[-1] for k in repo.keys("wal/"))


def verify_clean(repo) -> None:
    res = archive_info(repo, "--verify")
    assert res.rc == 0, f"archive-info --verify ({res.rc}):\n{res.stdout}\n{res.stderr}"


def stop_time_unix(summary: dict) -> int:
    return calendar.timegm(time.strptime(summary["stop_time"], "%Y-%m-%dT%H:%M:%SZ"))


def three_quick_backups(workspace, repo):
    """A primary and three base backups at least a second apart (no load: for the rules, not the data)."""
    pg = start_primary(workspace, repo)
    create_marks(pg)
    backups = []
    for i in range(3):
        pg.psql(f"INSERT INTO marks (step) VALUES ('b{i}')")
        backups.append(base_push(pg, repo))
        time.sleep(1.1)
    return pg, backups


# ---------------------------------------------------------------------------------------------------
# 1. full_backups = 2, then recover between the second and third backups and to latest
# ---------------------------------------------------------------------------------------------------

def test_full_backups_two_keeps_recovery_exact(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    mark(pg, "one", 1)
    first = base_push(pg, repo)

    mark(pg, "two", 2)
    pg.pgbench(["-t", "300", "-c", "2"])
    second = base_push(pg, repo)

    time.sleep(1.2)  # base-push records whole seconds: the time target must be surely after its end
    mark(pg, "between", 3)
    state_between = db_state(pg)
    time_between = pg.scalar("SELECT clock_timestamp()::text")
    time.sleep(0.2)

    pg.pgbench(["-t", "300", "-c", "2"])
    third = base_push(pg, repo)
    mark(pg, "after", 4)
    state_latest = db_state(pg)
    pg.wait_archived(pg.switch_wal())

    wal_before = wal_files(repo)
    kept_backup_keys = {b["label"]: backup_keys(repo, b["label"]) for b in (second, third)}
    assert backup_keys(repo, first["label"])
    assert position(first["start_wal"]) < position(second["start_wal"])

    repo.update({"retention": {"full_backups": 2}})
    plan = prune_plan(repo)
    decided = {b["label"]: (b["action"], b["rule"]) for b in plan["backups"]}
    assert decided == {first["label"]: ("delete", "expired"), second["label"]: ("keep", "full-backups"),
                       third["label"]: ("keep", "full-backups")}
    assert plan["wal"]["cutoff"] == second["start_wal"]
    assert wal_files(repo) == wal_before, "--dry-run deleted something"

    res = prune(repo)
    assert res.rc == 0, res.stderr
    assert res.stdout.startswith("retention-prune: deleted 1 backup, "), res.stdout
    assert len(res.stdout.strip().splitlines()) == 1
    assert "freed" in res.stdout

    # Exactly: the oldest backup is gone, the others untouched; WAL (segments, .partial, .backup) before
    # the second backup's start segment is gone on every timeline, everything else is still there.
    assert backup_keys(repo, first["label"]) == []
    for label, keys in kept_backup_keys.items():
        assert backup_keys(repo, label) == keys
    cutoff = position(second["start_wal"])
    expected = [n for n in wal_before if n.endswith(".history") or position(n) >= cutoff]
    assert wal_files(repo) == expected
    assert any(position(n) < cutoff for n in wal_before), "the test should have had WAL to delete"
    assert repo.keys("locks/") == []
    verify_clean(repo)

    restored, summary = recover(workspace, repo, "between", "--target-time", time_between)
    assert summary["backup"] == second["label"]
    assert db_state(restored) == state_between
    restored.stop()
    latest, _ = recover(workspace, repo, "latest", "--target", "latest")
    assert db_state(latest) == state_latest

    # A second run has nothing left to do.
    res = prune(repo)
    assert res.rc == 0, res.stderr
    assert res.stdout.startswith("retention-prune: deleted 0 backups, 0 WAL files"), res.stdout


# ---------------------------------------------------------------------------------------------------
# 2. The window rule, with a faked clock
# ---------------------------------------------------------------------------------------------------

@pytest.mark.server_independent
def test_window_with_faked_clock(workspace, repo):
    pg, (b1, b2, b3) = three_quick_backups(workspace, repo)
    stop3 = stop_time_unix(b3)
    assert stop_time_unix(b2) < stop3
    repo.update({"retention": {"window": "1h"}})

    # now = stop3 + 1h: the window starts exactly at b3's stop (inside); b2 is the newest before it.
    plan = prune_plan(repo, now=stop3 + 3600)
    decided = {b["label"]: (b["action"], b["rule"]) for b in plan["backups"]}
    assert decided == {b1["label"]: ("delete", "expired"), b2["label"]: ("keep", "window"),
                       b3["label"]: ("keep", "window")}
    assert plan["policy"]["window"] == "1h"

    # Ten days later: only b3 (the base of the window, and the newest) is needed.
    plan = prune_plan(repo, now=stop3 + 10 * 86400)
    decided = {b["label"]: b["action"] for b in plan["backups"]}
    assert decided == {b1["label"]: "delete", b2["label"]: "delete", b3["label"]: "keep"}

    # A clock that moved back (now before every backup finished): everything is kept.
    plan = prune_plan(repo, now=stop_time_unix(b1) - 86400)
    assert all(b["action"] == "keep" and "future" in b["rules"] for b in plan["backups"])

    # A flag overrides the file; the real run deletes what the plan said.
    res = prune(repo, "--window", "1h", now=stop3 + 3600)
    assert res.rc == 0, res.stderr
    assert backup_keys(repo, b1["label"]) == []
    assert backup_keys(repo, b2["label"]) and backup_keys(repo, b3["label"])
    assert all(position(n) >= position(b2["start_wal"]) for n in segments(repo))
    verify_clean(repo)


# ---------------------------------------------------------------------------------------------------
# 3. Crash half-way
# ---------------------------------------------------------------------------------------------------

@pytest.mark.server_independent
def test_crash_after_manifest_delete_then_next_run_finishes(workspace, repo):
    pg, (b1, b2, b3) = three_quick_backups(workspace, repo)
    pg.wait_archived(pg.switch_wal())
    repo.update({"retention": {"full_backups": 1}})

    res = prune(repo, crash_after="manifest-delete")
    assert res.rc == EXIT_TEST_CRASH, f"{res.rc}: {res.stderr}"

    # In between: the first backup lost its manifest (invisible to every tool), its bundles remain, no WAL
    # was deleted, and the whole repository still verifies.
    left = backup_keys(repo, b1["label"])
    assert f"backups/{b1['label']}/manifest.json" not in left
    assert any("/bundle-" in k for k in left)
    assert f"backups/{b2['label']}/manifest.json" in backup_keys(repo, b2["label"])
    assert repo.keys("locks/") == ["locks/retention"]  # the crashed run's lock
    verify_clean(repo)
    info = json.loads(archive_info(repo, "--json").stdout)
    assert b1["label"] not in json.dumps(info.get("backups", []))

    # The next run takes over the dead run's lock and finishes the job.
    res = prune(repo)
    assert res.rc == 0, res.stderr
    assert "taking over stale lock" in res.stderr
    assert backup_keys(repo, b1["label"]) == []
    assert backup_keys(repo, b2["label"]) == []
    assert backup_keys(repo, b3["label"])
    assert all(position(n) >= position(b3["start_wal"]) for n in segments(repo))
    assert repo.keys("locks/") == []
    verify_clean(repo)


# ---------------------------------------------------------------------------------------------------
# 4. The lock
# ---------------------------------------------------------------------------------------------------

def lock_record(host: str, pid: int, when: int) -> bytes:
    return json.dumps({"tool": "retention-prune", "host": host, "pid": pid, "time": when,
                       "token": "other"}).encode()


@pytest.mark.server_independent
def test_lock_held_refuses_and_stale_lock_is_taken_over(workspace, repo):
    repo.update({"retention": {"full_backups": 1}})
    if repo.backend == "fs":  # Repo.write() chowns the file, not the directories it creates
        make_dir(repo.path, mode=0o700)
        make_dir(repo.path / "locks", mode=0o700)
    # An initialised repository (retention-prune writes no lock into one that has no identity).
    repo.write("pgvault.json", json.dumps({"format": 1, "system_identifier": "7000000000000000001",
                                           "pg_version": 15, "wal_segment_size": 16 << 20}).encode())
    now = int(time.time())
    repo.write("locks/retention", lock_record("other-host.example", 4242, now - 60))
    res = prune(repo)
    assert res.rc == EXIT_LOCKED, f"{res.rc}: {res.stderr}"
    assert "locked by retention-prune on host other-host.example pid 4242" in res.stderr
    assert "locks/retention" in res.stderr
    assert repo.keys("locks/") == ["locks/retention"]
    # --dry-run takes no lock.
    assert prune(repo, "--dry-run").rc == 0

    # Older than the stale timeout: taken over, and released at the end.
    res = prune(repo, "--stale-lock-timeout", "30s")
    assert res.rc == 0, res.stderr
    assert "taking over stale lock" in res.stderr
    assert repo.keys("locks/") == []

    repo.write("locks/retention", lock_record("other-host.example", 4242, now - 7200))
    res = prune(repo)  # default timeout 1h
    assert res.rc == 0, res.stderr
    assert repo.keys("locks/") == []


@pytest.mark.server_independent
def test_lock_taken_over_mid_run_stops_deleting(workspace, repo):
    pg, (b1, b2, b3) = three_quick_backups(workspace, repo)
    pg.wait_archived(pg.switch_wal())
    repo.update({"retention": {"full_backups": 1}})
    wal_before = wal_files(repo)

    # Right after the first backup's manifest is deleted, another run's record replaces the lock.
    res = prune(repo, takeover_after="manifest-delete")
    assert res.rc == EXIT_LOCKED, f"{res.rc}: {res.stderr}"
    assert "lock locks/retention is no longer ours (now held by retention-prune on host test-takeover" in res.stderr
    # Nothing after that step was deleted: the first backup's bundles, the second backup, every WAL file.
    assert any("/bundle-" in k for k in backup_keys(repo, b1["label"]))
    assert f"backups/{b2['label']}/manifest.json" in backup_keys(repo, b2["label"])
    assert set(wal_before) <= set(wal_files(repo))
    # The new holder's lock is left alone, and the repository verifies.
    assert b"test-takeover" in repo.read("locks/retention")
    verify_clean(repo)


# ---------------------------------------------------------------------------------------------------
# 5. Policy errors
# ---------------------------------------------------------------------------------------------------

@pytest.mark.server_independent
def test_bad_policy_is_a_config_error(workspace, repo):
    res = prune(repo)  # neither rule set
    assert res.rc == EXIT_USAGE
    assert "no rule is enabled" in res.stderr
    for args, needle in ((["--window", "30x"], "window"), (["--window", "0d"], "window"),
                         (["--full-backups", "-1"], "full_backups"), (["--full-backups", "two"], "full_backups"),
                         (["--full-backups", "1", "--incomplete-grace", "10m"], "incomplete_grace"),
                         (["--full-backups", "1", "--min-full-backups", "0"], "min_full_backups")):
        res = prune(repo, *args)
        assert res.rc == EXIT_USAGE, f"{args}: {res.rc} {res.stderr}"
        assert needle in res.stderr, res.stderr
    assert repo.keys("locks/") == []
