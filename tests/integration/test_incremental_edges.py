"""Incremental backups across tablespaces and timelines (issue 13's last edge cases), restored and checked
with exact fingerprints: client-side block mode on PostgreSQL 15/16, the server's INCREMENTAL files on
17+ (summarize_wal = on).

1. A table in a tablespace created before the full, changed between the full and the incremental, and a
   table (with its index) in a tablespace created after the full: the incremental restored with
   --tablespace-map into new locations.
2. A timeline switch between the parent and the incremental: the full on timeline 1, a recovery to a
   restore point promoted onto timeline 2 archiving into the same repository, while the old primary
   keeps running on timeline 1 and takes an incremental there after the switch point. An incremental on
   the timeline-2 server must not take that newest backup (its timeline-1 WAL past the switch is not on
   timeline 2's history) but the full before the switch, and restore exactly; a later incremental
   of the old primary must not take the timeline-2 incremental (timeline 2 is not on timeline 1's
   history) but its own newest backup on timeline 1, and restore exactly too.

The backend does not matter here (the chain is read the same way from both): fs only.
"""

from __future__ import annotations

import os

import pytest

from helpers.pitr import base_push, create_marks, db_state, mark, recover, start_primary
from test_base_push import manifest_of

LOAD = ["-t", "200", "-c", "2"]


def mode_of(pg_version: int) -> str:
    return "server" if pg_version >= 17 else "client"


def primary(workspace, repo, mode: str):
    return start_primary(workspace, repo, **({"summarize_wal": "on"} if mode == "server" else {}))


def incremental(pg, repo, mode: str, parent: str) -> dict:
    summary = base_push(pg, repo, "--type", "incremental")
    assert summary["type"] == "incremental" and summary["incremental_mode"] == mode, summary
    assert summary["parent"] == parent, summary
    return summary


def table_state(pg, table: str) -> str:
    """Rows read by a sequential scan, and the same read through the table's index on id."""
    seq = pg.scalar(f"SELECT count(*) || '/' || md5(string_agg(id || v, ',' ORDER BY id)) FROM {table}")
    idx = pg.scalar(f"SET enable_seqscan = off; SET enable_bitmapscan = off; "
                    f"SELECT count(*) || '/' || md5(string_agg(id || v, ',' ORDER BY id)) FROM {table} WHERE id > 0")
    return seq + " " + idx


@pytest.mark.parametrize("repo", ["fs"], indirect=True)
def test_tablespaces_before_and_after_the_full(workspace, repo, pg_version):
    mode = mode_of(pg_version)
    pg = primary(workspace, repo, mode)
    before_dir, after_dir = workspace.mkdir("ts-before"), workspace.mkdir("ts-after")
    pg.psql(f"CREATE TABLESPACE ts_before LOCATION '{before_dir}'")
    pg.psql("CREATE TABLE t_before (id int PRIMARY KEY USING INDEX TABLESPACE ts_before, v text) TABLESPACE ts_before;"
            "INSERT INTO t_before SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
    pg.pgbench_init(scale=1)
    create_marks(pg)
    full = base_push(pg, repo)

    pg.psql("UPDATE t_before SET v = 'changed' || id WHERE id % 500 = 0;"
            "INSERT INTO t_before SELECT g, 'added' FROM generate_series(20001, 21000) g")
    pg.psql(f"CREATE TABLESPACE ts_after LOCATION '{after_dir}'")
    pg.psql("CREATE TABLE t_after (id int PRIMARY KEY USING INDEX TABLESPACE ts_after, v text) TABLESPACE ts_after;"
            "INSERT INTO t_after SELECT g, 'n' || g FROM generate_series(1, 5000) g")
    mark(pg, "between", 1)
    incr = incremental(pg, repo, mode, full["label"])

    oids = {name: int(pg.scalar(f"SELECT oid FROM pg_tablespace WHERE spcname = '{name}'"))
            for name in ("ts_before", "ts_after")}
    files = manifest_of(repo, incr["label"])["files"]
    kinds = {(f["tablespace"], f.get("kind", "full")) for f in files}
    # The changed table is stored as changed blocks in its tablespace; the new one whole.
    assert (oids["ts_before"], "blocks") in kinds and (oids["ts_after"], "full") in kinds, kinds
    assert (oids["ts_after"], "blocks") not in kinds, kinds

    pg.psql("INSERT INTO t_after VALUES (5001, 'after the incremental')")  # replayed from the WAL
    mark(pg, "after", 2)

    def state(c):
        return db_state(c) + (table_state(c, "t_before"), table_state(c, "t_after"))
    expected = state(pg)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    moved = {"ts_before": workspace.path("ts-before-moved"), "ts_after": workspace.path("ts-after-moved")}
    restored, summary = recover(workspace, repo, "restored",
                                "--tablespace-map", f"{before_dir}={moved['ts_before']}",
                                "--tablespace-map", f"{after_dir}={moved['ts_after']}")
    assert summary["backup"] == incr["label"] and summary["chain"] == [full["label"], incr["label"]], summary
    assert sorted((t["oid"], t["location"]) for t in summary["tablespaces"]) == \
        sorted((oids[n], str(moved[n])) for n in moved)
    assert state(restored) == expected
    for name, oid in oids.items():
        assert os.readlink(restored.datadir / "pg_tblspc" / str(oid)) == str(moved[name])
        assert restored.scalar(f"SELECT pg_tablespace_location({oid})") == str(moved[name])
        leftovers = [n for _, _, names in os.walk(moved[name]) for n in names if n.startswith("INCREMENTAL.")]
        assert leftovers == [], (name, leftovers)


@pytest.mark.parametrize("repo", ["fs"], indirect=True)
def test_timeline_switch_between_parent_and_incremental(workspace, repo, pg_version):
    mode = mode_of(pg_version)
    pg = primary(workspace, repo, mode)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    full = base_push(pg, repo)
    mark(pg, "tl1", 1)
    pg.psql("SELECT pg_create_restore_point('switch')")
    mark(pg, "tl1-after-switch", 2)  # not on timeline 2
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    # Timeline 2 branches off timeline 1 at 'switch' and archives into the repository.
    tl2, s2 = recover(workspace, repo, "tl2", "--target-name", "switch", archive=True)
    assert s2["backup"] == full["label"]
    assert tl2.scalar("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)") == "00000002"

    # The old primary goes on on timeline 1: its incremental (on the full) is the repository's newest
    # backup, and it ends after timeline 2 left timeline 1.
    pg.pgbench(LOAD)
    on_tl1 = incremental(pg, repo, mode, full["label"])
    assert on_tl1["timeline"] == 1

    tl2.pgbench(LOAD)
    mark(tl2, "tl2", 3)
    incr = incremental(tl2, repo, mode, full["label"])  # not on_tl1
    assert incr["timeline"] == 2
    mark(tl2, "tl2-after", 4)
    expected = db_state(tl2)
    assert expected[2] == "tl1,tl2,tl2-after"
    tl2.wait_archived(tl2.switch_wal(), fail_on_error=True)
    tl2.stop()

    # The other way round: timeline 2 is on no history of the old primary's timeline 1, so its newest
    # backup (the timeline-2 incremental) is passed over for the newest one on timeline 1.
    mark(pg, "tl1-late", 5)
    late = incremental(pg, repo, mode, on_tl1["label"])
    expected_tl1 = db_state(pg)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    pg.stop()

    for name, args, backup, chain, state in (
            ("r-tl2", [], incr, [full, incr], expected),
            ("r-tl1", ["--target-timeline", "1"], late, [full, on_tl1, late], expected_tl1)):
        restored, summary = recover(workspace, repo, name, *args)
        assert summary["backup"] == backup["label"], summary
        assert summary["chain"] == [b["label"] for b in chain], summary
        assert summary["target_timeline"] == summary["backup_timeline"] == backup["timeline"], summary
        assert db_state(restored) == state, name
        restored.stop()
