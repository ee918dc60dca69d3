"""pitr-prepare and archive-info against a real PostgreSQL (15 to 18), on every repository backend.

1. Full cycle: base-push, recorded points (time, LSN, xid, restore point), then pitr-prepare to each kind
   of target into a fresh directory, start, and compare an exact fingerprint of the data.
2. Timelines: recover, promote (timeline 2), keep writing and archiving, then recover to a point on
   timeline 2 from the backup taken on timeline 1.
3. A missing segment is reported by pitr-prepare before it writes anything, and by archive-info --verify.
4. A corrupted bundle byte makes pitr-prepare fail naming the backup and file, leaving no data directory.
5. A tablespace outside the data directory survives the round trip, remapped and in place.
6. A table file larger than a bundle restores whole (the large-bundle and O_DIRECT paths).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from helpers.pitr import (archive_info, archive_info_json, base_push, create_marks, db_state, mark,
                          pitr_prepare, recover, segments, start_primary, wal_key)

EXIT_USAGE = 2
EXIT_UNRECOVERABLE = 3
EXIT_CORRUPTION = 6


def wal_timeline(pg) -> int:
    return int(pg.scalar("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16)


# ---------------------------------------------------------------------------------------------------
# 1. Full cycle, every kind of target
# ---------------------------------------------------------------------------------------------------

def test_full_cycle_every_target(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    mark(pg, "base", 1)
    first = base_push(pg, repo)["label"]

    time.sleep(1.2)  # base-push records whole seconds: the time target must be surely after its end
    mark(pg, "A", 2)
    pg.pgbench(["-t", "200", "-c", "2"])
    state_a = db_state(pg)
    time_a = pg.scalar("SELECT clock_timestamp()::text")
    time.sleep(0.2)

    second = base_push(pg, repo)["label"]  # no writes since A: the state at its end is state_a
    assert second > first
    time.sleep(0.2)

    mark(pg, "B", 3)
    state_b = db_state(pg)
    lsn_b = pg.scalar("SELECT pg_current_wal_insert_lsn()")

    xid_c = pg.psql("BEGIN; INSERT INTO marks (step) VALUES ('C'); "
                    "UPDATE pgbench_accounts SET abalance = abalance - 7 WHERE aid % 13 = 0; "
                    "SELECT pg_current_xact_id(); COMMIT;").strip()
    state_c = db_state(pg)

    mark(pg, "D", 4)
    pg.psql("SELECT pg_create_restore_point('point_d')")
    state_d = db_state(pg)

    mark(pg, "E", 5)
    pg.pgbench(["-t", "200", "-c", "2"])
    state_latest = db_state(pg)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    assert len({state_a, state_b, state_c, state_d, state_latest}) == 5

    # archive-info sees both backups and a recovery window up to the last archived segment.
    info = archive_info_json(repo)
    assert [b["label"] for b in info["backups"]] == [first, second]
    assert info["recovery_window"]["available"] is True
    assert info["recovery_window"]["earliest"]["backup"] == first
    assert info["wal"][0]["timeline"] == 1 and info["wal"][0]["gaps"] == []
    text = archive_info(repo)
    assert text.rc == 0 and first in text.stdout and "recovery window" in text.stdout

    # A dry run plans without writing.
    dry_dir = workspace.path("dry")
    res = pitr_prepare(repo, dry_dir, "--dry-run", "--json", "--target-time", time_a)
    assert res.rc == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["dry_run"] is True and plan["backup"] == first and not dry_dir.exists()

    cases = [
        ("time", ["--target-time", time_a], first, state_a),
        ("lsn", ["--target-lsn", lsn_b], second, state_b),
        ("xid", ["--target-xid", xid_c], second, state_c),
        ("name", ["--target-name", "point_d"], second, state_d),
        ("immediate", ["--target", "immediate"], second, state_a),
        ("latest", [], second, state_latest),
    ]
    for kind, args, backup, expected in cases:
        restored, summary = recover(workspace, repo, f"r-{kind}", *args)
        assert summary["backup"] == backup, (kind, summary)
        assert summary["target"]["type"] == kind
        got = db_state(restored)
        assert got == expected, f"target {kind}: {got} != {expected}"
        conf = (restored.datadir / "postgresql.auto.conf").read_text()
        assert "restore_command = '" in conf and "wal-fetch --config" in conf
        assert not (restored.datadir / "recovery.signal").exists()  # consumed by the promotion
        restored.stop()

    # The data directory must be empty: refused without --force, replaced with it.
    res = pitr_prepare(repo, workspace.path("r-latest", "data"))
    assert res.rc == EXIT_USAGE and "not empty" in res.stderr, res.stderr
    res = pitr_prepare(repo, workspace.path("r-latest", "data"), "--force", "--target", "immediate",
                       "--target-action", "shutdown")
    assert res.rc == 0, res.stderr
    assert "pg_ctl -D" in res.stdout
    conf = (workspace.path("r-latest", "data", "postgresql.auto.conf")).read_text()
    assert conf.count("restore_command") == 1 and "recovery_target = 'immediate'" in conf
    assert "recovery_target_action = 'shutdown'" in conf


def test_target_action_pause_and_shutdown(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    base_push(pg, repo)
    mark(pg, "A", 1)
    state_a = db_state(pg)
    lsn_a = pg.scalar("SELECT pg_current_wal_insert_lsn()")
    mark(pg, "B", 2)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    paused, _ = recover(workspace, repo, "paused", "--target-lsn", lsn_a, "--target-action", "pause",
                        wait=False)
    paused.wait_ready()
    deadline = time.monotonic() + 60
    while paused.scalar("SELECT pg_get_wal_replay_pause_state()") != "paused":
        assert time.monotonic() < deadline, "recovery did not pause at the target"
        time.sleep(0.2)
    assert paused.scalar("SELECT pg_is_in_recovery()") == "t"
    assert db_state(paused) == state_a
    paused.stop()

    down, _ = recover(workspace, repo, "down", "--target-lsn", lsn_a, "--target-action", "shutdown", wait=False)
    assert down.wait_exit(timeout=120) == 0
    assert "shutdown at recovery target" in down.log_text()


# ---------------------------------------------------------------------------------------------------
# 2. Timelines
# ---------------------------------------------------------------------------------------------------

def test_recover_to_a_point_on_timeline_2_from_a_timeline_1_backup(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    label = base_push(pg, repo)["label"]
    mark(pg, "tl1", 1)
    pg.psql("SELECT pg_create_restore_point('branch')")
    mark(pg, "tl1-only", 2)  # after the branch point: must never show up on timeline 2
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    # Recover to the branch point and promote: timeline 2, archiving into the same repository.
    r1, s1 = recover(workspace, repo, "tl2", "--target-name", "branch", archive=True)
    assert s1["backup"] == label
    assert wal_timeline(r1) == 2
    mark(r1, "tl2-a", 3)
    r1.pgbench(["-t", "100", "-c", "2"])
    state_on_tl2 = db_state(r1)
    r1.psql("SELECT pg_create_restore_point('on_tl2')")
    mark(r1, "tl2-b", 4)
    r1.wait_archived(r1.switch_wal(), fail_on_error=True)
    r1.stop()
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    info = archive_info_json(repo)
    assert {w["timeline"] for w in info["wal"]} >= {1, 2}
    hist = {h["timeline"]: h for h in info["history"]}
    assert hist[2]["parents"][-1]["timeline"] == 1 and hist[2]["error"] == ""
    assert info["recovery_window"]["latest"]["timeline"] == 2

    r2, s2 = recover(workspace, repo, "from-tl1", "--target-name", "on_tl2")
    assert s2["backup"] == label and s2["backup_timeline"] == 1 and s2["target_timeline"] == 2
    assert db_state(r2) == state_on_tl2
    assert "tl1-only" not in db_state(r2)[2]
    r2.stop()

    # Timeline 1 through to its end is still reachable explicitly.
    r3, s3 = recover(workspace, repo, "stay-tl1", "--target-timeline", "current")
    assert s3["target_timeline"] == 1
    assert db_state(r3)[2] == "tl1,tl1-only"
    r3.stop()

    res = archive_info(repo, "--verify")
    assert res.rc == 0, res.stdout + res.stderr
    assert "0 problems" in res.stdout


# ---------------------------------------------------------------------------------------------------
# 3. A missing segment
# ---------------------------------------------------------------------------------------------------

def test_missing_segment_is_reported_before_anything_is_written(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    summary = base_push(pg, repo)
    state_backup = db_state(pg)
    for i in range(4):
        mark(pg, f"s{i}", i + 1)
        pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    stop_wal = summary.get("stop_wal") or archive_info_json(repo)["backups"][0]["stop_wal"]
    after = [s for s in segments(repo, 1) if s > stop_wal]
    assert len(after) >= 3, after
    victim = after[1]
    repo.delete(wal_key(victim))

    target = workspace.path("never", "data")
    res = pitr_prepare(repo, target)
    assert res.rc == EXIT_UNRECOVERABLE, res.stderr
    assert victim in res.stderr and "nothing was written" in res.stderr
    assert not target.exists()

    res = archive_info(repo, "--verify")
    assert res.rc == 1, res.stdout + res.stderr
    assert wal_key(victim) in res.stdout
    info = archive_info_json(repo, "--verify")
    assert any(p["key"] == wal_key(victim) and p["kind"] == "missing" for p in info["verify"]["problems"])
    assert info["wal"][0]["gaps"] == [{"first": victim, "last": victim, "segments": 1}]

    # Up to the end of the backup the archive is complete: that recovery is allowed and exact.
    restored, _ = recover(workspace, repo, "immediate", "--target", "immediate")
    assert db_state(restored) == state_backup


@pytest.mark.pg_versions(min=17)
def test_wal_summaries_directory_is_restored_empty(workspace, repo):
    # From 17 on the backup stream holds pg_wal/summaries (the WAL summarizer's files, for incremental
    # backups) as a directory without its files; the restored data directory must have it, empty.
    pg = start_primary(workspace, repo, summarize_wal="on")
    pg.pgbench_init(scale=1)
    create_marks(pg)
    pg.psql("CHECKPOINT")
    deadline = time.monotonic() + 60
    while int(pg.scalar("SELECT count(*) FROM pg_available_wal_summaries()")) == 0:
        assert time.monotonic() < deadline, "no WAL summary on the primary"
        time.sleep(0.2)
    base_push(pg, repo)
    mark(pg, "after", 1)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    expected = db_state(pg)

    restored = workspace.cluster("restored")
    res = pitr_prepare(repo, restored.datadir)
    assert res.rc == 0, res.stderr
    summaries = restored.datadir / "pg_wal" / "summaries"
    assert summaries.is_dir() and not list(summaries.iterdir())
    restored.configure(archive_mode="off", summarize_wal="off")
    restored.start()
    restored.wait_for_recovery_end(timeout=300)
    assert db_state(restored) == expected


# ---------------------------------------------------------------------------------------------------
# 4. A corrupted bundle
# ---------------------------------------------------------------------------------------------------

def test_corrupt_bundle_fails_naming_backup_and_file(workspace, repo):
    repo.update({"backup": {"bundle_size": "1MiB"}})
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    label = base_push(pg, repo)["label"]
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    bundles = [k for k in repo.keys(f"backups/{label}/") if "/bundle-" in k]
    victim = max(bundles, key=lambda k: len(repo.read(k)))
    repo.flip_byte(victim, len(repo.read(victim)) // 2)

    target = workspace.mkdir("corrupt-target")  # exists and is empty: must be left empty
    res = pitr_prepare(repo, target)
    assert res.rc == EXIT_CORRUPTION, res.stderr
    assert f"backup {label}" in res.stderr and "file " in res.stderr, res.stderr
    assert os.listdir(target) == []

    res = archive_info(repo, "--verify")
    assert res.rc == 1 and victim in res.stdout, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------------------
# 5. Tablespaces
# ---------------------------------------------------------------------------------------------------

def test_tablespace_round_trip_remapped_and_in_place(workspace, repo):
    pg = start_primary(workspace, repo)
    tsdir = workspace.mkdir("tblspc")
    pg.psql(f"CREATE TABLESPACE ts LOCATION '{tsdir}'")
    pg.psql("CREATE TABLE t_ts (id int, v text) TABLESPACE ts; "
            "INSERT INTO t_ts SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
    oid = pg.scalar("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'")
    pg.pgbench_init(scale=1)
    create_marks(pg)
    base_push(pg, repo)
    pg.psql("INSERT INTO t_ts SELECT g, 'after' FROM generate_series(20001, 21000) g")
    mark(pg, "after", 1)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    def state(c):
        return db_state(c) + (c.scalar("SELECT count(*) || '/' || md5(string_agg(v, ',' ORDER BY id)) FROM t_ts"),)
    expected = state(pg)

    newdir = workspace.path("tblspc-new")
    r1, s1 = recover(workspace, repo, "remapped", "--tablespace-map", f"{tsdir}={newdir}")
    assert s1["tablespaces"] == [{"oid": int(oid), "location": str(newdir)}]
    assert state(r1) == expected
    assert os.readlink(r1.datadir / "pg_tblspc" / oid) == str(newdir)
    assert r1.scalar(f"SELECT pg_tablespace_location({oid})") == str(newdir)
    assert not (r1.datadir / "tablespace_map").exists()
    r1.stop()

    # In place: the original location is occupied by the primary's files, which pitr-prepare never
    # removes; once they are gone, the tablespace comes back where it was.
    res = pitr_prepare(repo, workspace.path("blocked", "data"))
    assert res.rc == EXIT_USAGE and "tablespace directory" in res.stderr, res.stderr
    pg.stop()
    os.rename(tsdir, workspace.path("tblspc-old"))
    r2, _ = recover(workspace, repo, "in-place")
    assert state(r2) == expected
    assert os.readlink(r2.datadir / "pg_tblspc" / oid) == str(tsdir)


# ---------------------------------------------------------------------------------------------------
# 6. A large table
# ---------------------------------------------------------------------------------------------------

def test_a_large_table_restores_whole(workspace, repo):
    """A table file larger than a bundle (pgbench scale 6: pgbench_accounts is ~80 MB) is restored through
    the path of large bundles and files: decoded on a thread of its own beside the one writing it, and
    written past the page cache where the filesystem takes O_DIRECT. The restored server has every row."""
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=6)
    create_marks(pg)
    mark(pg, "base", 1)
    state = db_state(pg)
    base_push(pg, repo)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    restored, summary = recover(workspace, repo, "large")
    rel = restored.scalar("SELECT pg_relation_filepath('pgbench_accounts')")
    assert os.path.getsize(restored.datadir / rel) >= 64 << 20  # this test's premise: a bundle of its own
    assert db_state(restored) == state
    restored.stop()
