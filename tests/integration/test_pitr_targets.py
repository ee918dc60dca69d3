"""Time, xid and name targets resolved from the WAL index before pitr-prepare writes anything.

With one backup before and one after restore point t1 (and a time and an xid between them), PostgreSQL
can reach the targets only from the older backup (from the newer one it stops with "recovery ended before
configured recovery target was reached"): pitr-prepare must pick it for each kind, the data must match
exactly, targets the archive does not hold are refused with the data directory untouched, archive-info
--targets lists what one can recover to, and a segment whose index object is gone restores as before.
"""

from __future__ import annotations

import json
import time

import pytest

from helpers.pitr import (archive_info_json, base_push, create_marks, db_state, mark, pitr_prepare, recover,
                          start_primary)

EXIT_UNRECOVERABLE = 3
# A restore point name with a quote, a newline and a backslash, created right after t1: pitr-prepare must
# write it into postgresql.auto.conf so that the server reads it back (a raw newline made it refuse the file).
ODD_NAME = "t1 it's\nline two\\end"


def index_key(repo, segment: str) -> str:
    """The storage key of `segment`'s WAL index object."""
    found = [k for k in repo.keys("walindex/") if k.rsplit("/", 1)[-1] == segment]
    assert len(found) == 1, (segment, repo.keys("walindex/"))
    return found[0]


def refused(repo, workspace, name: str, *args: str) -> str:
    """pitr-prepare must exit 3 before it creates the data directory; returns its stderr."""
    datadir = workspace.path(name)
    res = pitr_prepare(repo, datadir, *args)
    assert res.rc == EXIT_UNRECOVERABLE, (args, res.rc, res.stderr)
    assert not datadir.exists(), args
    assert "nothing was written" in res.stderr, res.stderr
    return res.stderr


def two_backups_around_t1(workspace, repo) -> dict:
    """A primary archiving into `repo`; a backup, then restore point t1, a transaction (its xid) and a
    time, then a second backup and more writes. Returns the labels, the targets and the expected states."""
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    mark(pg, "base", 1)
    older = base_push(pg, repo)["label"]
    time.sleep(1.2)  # base-push records whole seconds: the time target must be surely after its end
    mark(pg, "A", 2)
    pg.psql("SELECT pg_create_restore_point('t1')")
    pg.psql("SELECT pg_create_restore_point(E't1 it''s\\nline two\\\\end')")
    state_t1 = db_state(pg)
    xid = pg.psql("BEGIN; INSERT INTO marks (step) VALUES ('X'); "
                  "UPDATE pgbench_accounts SET abalance = abalance - 7 WHERE aid % 13 = 0; "
                  "SELECT pg_current_xact_id(); COMMIT;").strip()
    state_x = db_state(pg)
    time.sleep(0.2)
    when = pg.scalar("SELECT clock_timestamp()::text")
    time.sleep(0.2)
    mark(pg, "Y", 3)
    newer = base_push(pg, repo)["label"]
    mark(pg, "Z", 4)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    assert newer > older and len({state_t1, state_x, db_state(pg)}) == 3
    return dict(older=older, newer=newer, xid=xid, when=when, state_t1=state_t1, state_x=state_x)


@pytest.mark.parametrize("repo", ["fs"], indirect=True)
def test_targets_between_two_backups(workspace, repo):
    a = two_backups_around_t1(workspace, repo)
    older, newer, xid, when, state_t1, state_x = (a[k] for k in ("older", "newer", "xid", "when", "state_t1",
                                                                  "state_x"))

    # The plan names the resolved target and why the newer backup was passed over.
    res = pitr_prepare(repo, workspace.path("dry"), "--dry-run", "--json", "--target-name", "t1")
    assert res.rc == 0, res.stderr
    plan = json.loads(res.stdout)
    resolution = plan["target"]["resolution"]
    assert plan["backup"] == older and resolution["resolved"] is True, plan
    assert resolution["lsn"] and resolution["segment"], plan
    assert f"passed over: the archived WAL from backup {newer}'s start" in plan["why"], plan["why"]

    for kind, args, expected in [("name", ["--target-name", "t1"], state_t1),
                                 ("odd-name", ["--target-name", ODD_NAME], state_t1),
                                 ("xid", ["--target-xid", xid], state_x),
                                 ("time", ["--target-time", when], state_x)]:
        restored, summary = recover(workspace, repo, f"r-{kind}", *args)
        assert summary["backup"] == older, (kind, summary)
        assert summary["target"]["resolution"]["resolved"] is True, (kind, summary)
        assert db_state(restored) == expected, kind
        restored.stop()

    # Targets the archive does not hold: refused before anything is written, naming what it holds.
    err = refused(repo, workspace, "no-name", "--target-name", "never")
    assert 'restore point "never" was never created' in err and '"t1"' in err, err
    err = refused(repo, workspace, "late", "--target-time", "2099-01-01 00:00:00+00")
    assert "the newest archived commit or abort is at" in err, err
    err = refused(repo, workspace, "no-xid", "--target-xid", str(int(xid) + 1_000_000))
    assert "never commits or aborts" in err and "the xids that do range from" in err, err

    # archive-info --targets lists the restore point and the commit times of timeline 1.
    info = archive_info_json(repo, "--targets")
    points = [(p["name"], p["timeline"]) for p in info["targets"]["restore_points"]]
    assert points == [("t1", 1), (ODD_NAME, 1)], info["targets"]
    assert info["targets"]["restore_points"][0]["lsn"] == resolution["lsn"]
    assert info["targets"]["timelines"][0]["last_commit"] > info["targets"]["timelines"][0]["first_commit"]
    assert archive_info_json(repo)["targets"] is None

    # Without the index of the segment the older backup starts in, the target is not resolved in advance
    # (one log line) and that backup is planned for as before: WAL to the end of the timeline. (The newer
    # backup was passed over first: its own path is indexed.)
    start_wal = next(b["start_wal"] for b in info["backups"] if b["label"] == older)
    repo.delete(index_key(repo, start_wal))
    res = pitr_prepare(repo, workspace.path("r-gap"), "--dry-run", "--json", "--target-name", "t1")
    assert res.rc == 0, res.stderr
    assert f"segment {start_wal} has no WAL index" in res.stderr, res.stderr
    assert json.loads(res.stdout)["target"]["resolution"]["resolved"] is False
    restored, summary = recover(workspace, repo, "r-gap", "--target-name", "t1")
    assert summary["backup"] == older, summary
    assert db_state(restored) == state_t1
    restored.stop()


@pytest.mark.parametrize("repo", ["s3"], indirect=True)
def test_targets_resolved_on_s3(workspace, repo):
    """The indexes and segments read from S3 (in parallel): plans only, no recovery."""
    a = two_backups_around_t1(workspace, repo)
    for args in (["--target-name", "t1"], ["--target-xid", a["xid"]], ["--target-time", a["when"]]):
        res = pitr_prepare(repo, workspace.path("dry"), "--dry-run", "--json", *args)
        assert res.rc == 0, res.stderr
        plan = json.loads(res.stdout)
        assert plan["backup"] == a["older"] and plan["target"]["resolution"]["resolved"] is True, plan
    err = refused(repo, workspace, "no-name", "--target-name", "never")
    assert 'restore point "never" was never created' in err and '"t1"' in err, err
    points = archive_info_json(repo, "--targets")["targets"]["restore_points"]
    assert [p["name"] for p in points] == ["t1", ODD_NAME]
