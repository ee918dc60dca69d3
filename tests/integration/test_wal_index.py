"""The WAL index wal-push writes beside every segment (docs/FORMAT.md section 6), against a real server.

A primary archives through wal-push; a commit of a known xid and a named restore point are made, the
segment is switched and archived; every archived segment then has an index object, and the indexes hold
the restore point at the position and time the server reported and the commit's xid. On fs and S3.
"""

from __future__ import annotations

import json
import re
import subprocess

from helpers.repo import Repo

SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
PG_EPOCH = 946684800  # 2000-01-01 in Unix seconds: PostgreSQL's TimestampTz counts microseconds from it


def lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def decoded(repo: Repo, key: str) -> bytes:
    res = subprocess.run(repo.cmd("pgvault-cat", key), capture_output=True, timeout=120)
    assert res.returncode == 0, f"pgvault-cat {key}: {res.stderr.decode(errors='replace')}"
    return res.stdout


def now_pg(pg) -> int:
    return round((float(pg.scalar("SELECT extract(epoch FROM clock_timestamp())")) - PG_EPOCH) * 1e6)


def test_wal_push_indexes_commits_and_restore_points(workspace, repo):
    pg = workspace.cluster("primary")
    pg.initdb()
    pg.configure(wal_level="replica", archive_mode="on", archive_command=repo.archive_command,
                 checkpoint_timeout="30min")
    pg.start()
    pg.psql("CREATE TABLE t(x int)")
    before = now_pg(pg)
    xid = int(pg.scalar("INSERT INTO t VALUES (1) RETURNING txid_current()"))
    rp_end = lsn(pg.scalar("SELECT pg_create_restore_point('it_rp')"))  # the record's end
    after = now_pg(pg)
    last = pg.switch_wal()
    pg.wait_archived(last, fail_on_error=True)

    segments = sorted(k.rsplit("/", 1)[-1] for k in repo.keys("wal/") if SEGMENT_RE.match(k.rsplit("/", 1)[-1]))
    index_keys = sorted(repo.keys("walindex/"))
    assert index_keys == [f"walindex/{s[:16]}/{s}" for s in segments]
    indexes = [json.loads(decoded(repo, k)) for k in index_keys]
    for key, x in zip(index_keys, indexes):
        assert x["format"] == 1 and x["segment"] == key.rsplit("/", 1)[-1] and x["records"] > 0

    rps = [rp for x in indexes for rp in x["restore_points"] if rp["name"] == "it_rp"]
    assert len(rps) == 1, indexes
    assert lsn(rps[0]["end_lsn"]) == rp_end
    assert before <= rps[0]["time"] <= after
    holding = [x for x in indexes if any(a <= xid <= b for a, b in x["xid_runs"])]
    assert len(holding) == 1, (xid, indexes)
    assert holding[0]["min_time"] <= holding[0]["max_time"]
    assert before - 1 <= holding[0]["max_time"]
    pg.stop()
