"""Restoring incremental backups straight from the repository (issue 13), against a real server:

1. full -> load -> incremental -> load -> incremental -> load (client-side block mode, and on
   PostgreSQL 17+ the server's INCREMENTAL files), with the edge cases between the backups
   (a table created, one truncated, one dropped, one shrunk by VACUUM below its parent's length, a
   database created and one dropped), recovered to a restore point between each pair and to latest:
   exact fingerprints every time, on every repository backend.
2. A changed byte inside a block-diff of an incremental: pitr-prepare and archive-info --verify name the
   backup and the file; nothing is left in the data directory.
3. retention-prune with full_backups = 1 and incremental_window = 1h (faked clock): a parent of the kept
   incremental is kept although older than the window, the rest goes, and recovery stays exact.
"""

from __future__ import annotations

import json
import os

import pytest

from helpers.pitr import (archive_info, base_push, create_marks, db_state, pitr_prepare, recover,
                          start_primary)
from test_base_push import manifest_of
from test_incremental_backup import binaries_major
from test_retention import prune, prune_plan, stop_time_unix, verify_clean

EXIT_CORRUPTION = 6
LOAD = ["-t", "200", "-c", "2"]


def state(pg) -> tuple[str, ...]:
    """db_state plus the edge-case objects: tables t_new / t_trunc / t_shrunk, the databases."""
    tables = pg.scalar("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'r' AND relname LIKE 't\\_%'")
    extra = []
    for t in (tables or "").split(","):
        if t:
            extra.append(t + ":" + pg.scalar(f"SELECT count(*) || '/' || coalesce(sum(hashtext(v)), 0) FROM {t}"))
    dbs = pg.scalar("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
    return (*db_state(pg), ";".join(extra), dbs)


def incremental(pg, repo, mode: str = "client") -> dict:
    summary = base_push(pg, repo, "--type", "incremental")
    assert summary["type"] == "incremental" and summary["incremental_mode"] == mode, summary
    return summary


@pytest.mark.parametrize("mode", ["client", "server"])
def test_pitr_to_points_between_incrementals_and_to_latest(workspace, repo, mode):
    if mode == "server" and binaries_major() < 17:
        pytest.skip("server-side incremental backups need PostgreSQL 17 or later")
    pg = start_primary(workspace, repo, **({"summarize_wal": "on"} if mode == "server" else {}))
    if mode == "client":
        # Files over 1 MiB (pgbench_accounts, t_shrunk) get bundles of their own, so their pieces are
        # composed by the pipelined restore (one thread per piece, merged block by block: chain_pipe.h),
        # t_shrunk's with a truncation; the small files share bundles and take the pass-by-pass path.
        repo.update({"backup": {"bundle_size": "1MiB"}})
    pg.pgbench_init(scale=1)
    create_marks(pg)
    pg.psql("CREATE TABLE t_trunc (v text); INSERT INTO t_trunc SELECT 'r' || g FROM generate_series(1, 5000) g;"
            "CREATE TABLE t_drop (v text); INSERT INTO t_drop VALUES ('x');"
            "CREATE TABLE t_shrunk (v text); INSERT INTO t_shrunk SELECT repeat('s', 200) || g FROM generate_series(1, 20000) g")
    pg.psql("CREATE DATABASE db_dropped")
    full = base_push(pg, repo)

    pg.pgbench(LOAD)
    pg.psql("INSERT INTO marks (step) VALUES ('one'); CREATE TABLE t_new (v text);"
            "INSERT INTO t_new SELECT 'n' || g FROM generate_series(1, 3000) g; TRUNCATE t_trunc;"
            "INSERT INTO t_trunc VALUES ('after truncate')")
    pg.psql("CREATE INDEX ON t_new (v)")
    pg.psql("DROP DATABASE db_dropped")
    pg.psql("CREATE DATABASE db_created")
    pg.psql("SELECT pg_create_restore_point('p1')")
    state_p1 = state(pg)
    incr1 = incremental(pg, repo, mode)
    assert incr1["parent"] == full["label"]

    pg.pgbench(LOAD)
    # DELETE the tail and VACUUM: the relation shrinks below its length in the parent (truncation).
    pg.psql("INSERT INTO marks (step) VALUES ('two'); DROP TABLE t_drop;"
            "DELETE FROM t_shrunk WHERE length(v) > 200 AND substr(v, 201)::int > 2000")
    pg.psql("VACUUM t_shrunk")
    pg.psql("SELECT pg_create_restore_point('p2')")
    state_p2 = state(pg)
    incr2 = incremental(pg, repo, mode)
    assert incr2["parent"] == incr1["label"]
    assert any(f.get("kind") == "blocks" for f in manifest_of(repo, incr2["label"])["files"])

    pg.pgbench(LOAD)
    pg.psql("INSERT INTO marks (step) VALUES ('three'); INSERT INTO t_new VALUES ('latest')")
    state_latest = state(pg)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    # A name target cannot be placed before recovery (without a WAL index): --backup picks the backup
    # that ends before it, the chain of the first incremental for p2.
    for name, args, backup, expected in (("p1", ["--target-name", "p1", "--backup", full["label"]], full, state_p1),
                                         ("p2", ["--target-name", "p2", "--backup", incr1["label"]], incr1, state_p2),
                                         ("latest", [], incr2, state_latest)):
        restored, summary = recover(workspace, repo, "r-" + name, *args)
        assert summary["backup"] == backup["label"], (name, summary)
        assert summary["chain"][0] == full["label"] and summary["chain"][-1] == backup["label"], summary
        assert state(restored) == expected, name
        assert restored.scalar("SELECT count(*) FROM pg_ls_dir('.') AS f WHERE f LIKE 'INCREMENTAL.%'") == "0"
        restored.stop()

    if mode == "client":  # the restores above took the pipelined path for the files over 1 MiB
        res = pitr_prepare(repo, workspace.cluster("r-debug").datadir, "-v")
        assert res.rc == 0, res.stderr
        assert res.stderr.count("pieces composed at once") >= 2, res.stderr[-3000:]

    info = json.loads(archive_info(repo, "--json").stdout)
    chains = {b["label"]: b["chain"] for b in info["backups"]}
    assert chains[incr2["label"]] == [full["label"], incr1["label"], incr2["label"]]


def test_damaged_block_diff_is_named(workspace, repo):
    if repo.backend != "fs":
        pytest.skip("the byte is changed in place in an uncompressed object: the fs backend is enough")
    repo.update({"compression": {"method": "none"}})
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    base_push(pg, repo)
    pg.pgbench(LOAD)
    incr = incremental(pg, repo)
    pg.psql("CREATE TABLE after_backup ()")  # WAL to switch away from (else the switch may be a no-op)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    m = manifest_of(repo, incr["label"])
    f = max((f for f in m["files"] if f.get("kind") == "blocks"), key=lambda f: f["stored_size"])
    key = f"backups/{incr['label']}/bundle-{f['bundle']:06d}"
    # An unencrypted, uncompressed object is a 32-byte header, the plaintext, a 48-byte trailer: the byte
    # is inside the last block of the entry (before its 4-byte end mark).
    repo.flip_byte(key, 32 + f["offset"] + f["stored_size"] - 4 - 100)

    target = workspace.mkdir("damaged-target")
    res = pitr_prepare(repo, target)
    assert res.rc == EXIT_CORRUPTION, res.stderr
    want = f"backup {incr['label']}: file {f['path']} (bundle bundle-{f['bundle']:06d}): changed blocks fail verification"
    assert want in res.stderr, res.stderr
    assert os.listdir(target) == []

    res = archive_info(repo, "--verify")
    assert res.rc == 1, res.stdout + res.stderr
    assert f"backup {incr['label']}: file {f['path']}: CRC-32C" in res.stdout, res.stdout


def test_retention_keeps_the_parents_of_a_kept_incremental(workspace, repo):
    if repo.backend != "fs":
        pytest.skip("the planner is backend-independent; test_retention covers deletion on s3")
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    old = base_push(pg, repo)
    pg.pgbench(LOAD)
    full = base_push(pg, repo)
    pg.pgbench(LOAD)
    incr1 = incremental(pg, repo)
    pg.pgbench(LOAD)
    incr2 = incremental(pg, repo)
    pg.psql("INSERT INTO marks (step) VALUES ('after')")
    expected = db_state(pg)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    repo.update({"retention": {"full_backups": 1}})
    now = stop_time_unix(incr2) + 2 * 3600  # every incremental is older than the window

    plan = prune_plan(repo, "--incremental-window", "1h", now=now)
    decided = {b["label"]: (b["action"], b["rules"]) for b in plan["backups"]}
    assert decided[old["label"]] == ("delete", [])
    assert decided[incr1["label"]] == ("keep", ["parent"]), decided  # only as the parent of incr2
    assert decided[incr2["label"]][0] == "keep" and decided[full["label"]][0] == "keep"
    assert plan["policy"]["incremental_window"] == "1h"
    assert plan["wal"]["cutoff"][8:] == full["start_wal"][8:]

    res = prune(repo, "--incremental-window", "1h", now=now)
    assert res.rc == 0, res.stderr
    assert repo.keys(f"backups/{old['label']}/") == []
    assert repo.keys(f"backups/{incr1['label']}/")
    verify_clean(repo)
    restored, summary = recover(workspace, repo, "after-prune")
    assert summary["backup"] == incr2["label"]
    assert db_state(restored) == expected
