"""base-push --type incremental against a real server: client-side block mode (PostgreSQL 15/16, or 17+
with summarize_wal off: the fallback's log line), server-side INCREMENTAL files (17+ with summarize_wal
on), the parent's choice and its refusals (--no-fallback). The incremental's stored bytes must be a small
fraction of the full's after a small pgbench load.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from helpers.pg import pg_bin
from helpers.pitr import create_marks, db_state, recover, start_primary
from helpers.repo import Repo
from test_base_push import manifest_of

#: pgbench scale of the test database (~75 MB) and transactions between two backups (each touches a few pages).
SCALE = 5
LOAD = ["-t", "200", "-c", "2"]


def push(pg, repo: Repo, *args: str):
    """base-push --json; returns (exit code, summary or None, stderr)."""
    res = pg.run(repo.cmd("base-push", "--conninfo", pg.conninfo, "--json", *args), timeout=600)
    return res.rc, (json.loads(res.stdout) if res.rc == 0 else None), res.stderr


def server_version(pg) -> int:
    return int(pg.scalar("SHOW server_version_num")) // 10000


def kinds(manifest: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in manifest["files"]:
        out[f.get("kind", "full")] = out.get(f.get("kind", "full"), 0) + 1
    return out


def check_incremental(repo: Repo, full: dict, incr: dict, mode: str) -> dict:
    """The incremental's manifest: on its parent, in `mode`, mostly blocks and unchanged files, and its
    stored bytes a small fraction of the full's; both keep the server's backup_manifest."""
    assert incr["label"].endswith("-I") and incr["type"] == "incremental"
    assert incr["parent"] == full["label"] and incr["incremental_mode"] == mode
    m = manifest_of(repo, incr["label"])
    assert m["parent"] == full["label"] and m["incremental_mode"] == mode
    # It records which backup it was taken against (resolve_chain checks the parent is still that one).
    parent = manifest_of(repo, full["label"])
    assert (m["parent_start_lsn"], m["parent_timeline"]) == (parent["start_lsn"], parent["timeline"]), m
    k = kinds(m)
    assert k.get("blocks", 0) > 0, k
    assert incr["stored_bytes"] < full["stored_bytes"] * 0.2, (incr["stored_bytes"], full["stored_bytes"], k)
    for label in (full["label"], incr["label"]):
        assert f"backups/{label}/backup_manifest" in repo.keys(f"backups/{label}/")
    return m


def test_client_mode_and_fallbacks(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=SCALE)
    create_marks(pg)
    # No parent: refused under --no-fallback, else a full backup with a log line saying why.
    rc, _, err = push(pg, repo, "--type", "incremental", "--no-fallback")
    assert rc == 2 and "no complete backup" in err, err
    rc, full, err = push(pg, repo, "--type", "incremental")
    assert rc == 0 and full["type"] == "full" and full["label"].endswith("-F"), err
    assert "no parent for an incremental backup" in err, err
    pg.pgbench(LOAD)
    if server_version(pg) >= 17:  # summarize_wal is off by default: the fallback to client mode
        rc, _, err = push(pg, repo, "--type", "incremental", "--no-fallback")
        assert rc == 2 and "summarize_wal is off" in err, err
    rc, incr, err = push(pg, repo, "--type", "incremental")
    assert rc == 0, err
    if server_version(pg) >= 17:
        assert "summarize_wal is off on the server, falling back to client-side block mode" in err, err
    m = check_incremental(repo, full, incr, "client")
    assert kinds(m).get("unchanged", 0) > 0, kinds(m)
    # A second incremental on the first: its parent is the newest backup.
    pg.pgbench(LOAD)
    rc, incr2, err = push(pg, repo, "--type", "incremental")
    assert rc == 0 and incr2["parent"] == incr["label"], err


def binaries_major() -> int:
    """The major version of the servers the tests start (postgres --version)."""
    out = subprocess.run([pg_bin("postgres"), "--version"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"\(PostgreSQL\) (\d+)", out).group(1))


@pytest.mark.skipif(binaries_major() < 17, reason="server-side incremental backups need PostgreSQL 17 or later")
def test_server_mode(workspace, repo):
    pg = start_primary(workspace, repo, summarize_wal="on")
    pg.pgbench_init(scale=SCALE)
    rc, full, err = push(pg, repo)
    assert rc == 0, err
    pg.pgbench(LOAD)
    rc, incr, err = push(pg, repo, "--type", "incremental")
    assert rc == 0, err
    m = check_incremental(repo, full, incr, "server")
    assert not any("INCREMENTAL." in f["path"] for f in m["files"])


@pytest.mark.skipif(binaries_major() < 17, reason="server-side incremental backups need PostgreSQL 17 or later")
def test_server_refusal_is_one_line(workspace, repo):
    """A parent taken before summarize_wal was turned on and whose WAL is gone from pg_wal: the summaries
    (begun at the oldest WAL left) do not cover its start, the server refuses, base-push says so in one
    line naming the parent."""
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    rc, full, err = push(pg, repo)
    assert rc == 0, err
    pg.pgbench(LOAD)
    for _ in range(3):  # the WAL of the full's start removed (archived, then checkpointed away)
        pg.switch_wal()
        time.sleep(0.5)
        pg.psql("CHECKPOINT")
    pg.psql("ALTER SYSTEM SET summarize_wal = on")
    pg.reload()
    rc, _, err = push(pg, repo, "--type", "incremental")
    assert rc != 0, err
    lines = [line for line in err.splitlines() if "refused an incremental backup" in line]
    assert len(lines) == 1 and full["label"] in lines[0] and "summar" in lines[0], err
    assert not [k for k in repo.keys("backups/") if k.split("/")[1].endswith("-I")]  # nothing left behind


def load_and_mark(pg, step: str) -> tuple[str, ...]:
    """A pgbench load and a marked row (one row: a seq-scan UPDATE would touch every page); the fingerprint."""
    pg.pgbench(LOAD)
    pg.psql(f"INSERT INTO marks (step) VALUES ('{step}')")
    return db_state(pg)


@pytest.mark.parametrize("mode", ["client", "server"])
def test_chain_restores_exactly(workspace, repo, mode):
    """full -> load -> incremental -> load -> incremental -> load, restored to the latest state: exact data."""
    if mode == "server" and binaries_major() < 17:
        pytest.skip("server-side incremental backups need PostgreSQL 17 or later")
    settings = {"summarize_wal": "on"} if mode == "server" else {}
    pg = start_primary(workspace, repo, **settings)
    pg.pgbench_init(scale=SCALE)
    create_marks(pg)
    rc, full, err = push(pg, repo)
    assert rc == 0, err
    for step in ("one", "two"):
        load_and_mark(pg, step)
        rc, incr, err = push(pg, repo, "--type", "incremental")
        assert rc == 0 and incr["incremental_mode"] == mode, err
    expected = load_and_mark(pg, "three")
    pg.switch_wal()
    restored, summary = recover(workspace, repo, "restored")
    assert summary["backup"] == incr["label"], summary
    assert db_state(restored) == expected
    assert restored.scalar("SELECT count(*) FROM pg_ls_dir('base/5') AS f WHERE f LIKE 'INCREMENTAL.%'") == "0"


def test_differential_is_on_the_full_and_restores_exactly(workspace, repo):
    """--type diff after full -> incremental: stored as an incremental whose parent is the full (not the
    newer incremental), named in the log, and restored to the latest state exactly."""
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=SCALE)
    create_marks(pg)
    rc, _, err = push(pg, repo, "--type", "diff", "--no-fallback")
    assert rc == 2 and "no complete full backup" in err, err
    rc, full, err = push(pg, repo)
    assert rc == 0, err
    load_and_mark(pg, "one")
    rc, incr, err = push(pg, repo, "--type", "incremental")
    assert rc == 0 and incr["parent"] == full["label"], err
    load_and_mark(pg, "two")
    rc, diff, err = push(pg, repo, "--type", "diff")
    assert rc == 0, err
    assert f"differential backup on parent {full['label']}" in err, err
    check_incremental(repo, full, diff, "client")
    expected = load_and_mark(pg, "three")
    pg.switch_wal()
    restored, summary = recover(workspace, repo, "restored")
    assert summary["backup"] == diff["label"], summary
    assert db_state(restored) == expected
