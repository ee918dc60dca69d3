"""wal-push's detached push worker ([push] parallel > 1, one repository) against a real PostgreSQL 15.

A backlog of .ready segments is drained through archive_command = wal-push: the first call starts one
detached worker that pushes the backlog ahead, the next calls find their records and return at once.
Every segment lands once and byte-identical; the worker is gone at the end; a worker killed with
kill -9 mid-drain loses nothing (the calls push what it left and start a new one).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from pathlib import Path

from helpers.proc import chown_to
from test_wal_archive import (archived_segments, start_backlog, process_alive, push_worker_pid,
                              wait_push_worker_gone)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_push_worker_drains_a_backlog_and_survives_kill_9(workspace, repo):
    pg, spool, last = start_backlog(workspace, repo, 20)
    wal = pg.datadir / "pg_wal"
    backlog = {p.name[:-6]: _sha256(wal / p.name[:-6]) for p in (wal / "archive_status").glob("*.ready")
               if re.fullmatch(r"[0-9A-F]{24}\.ready", p.name)}
    assert len(backlog) >= 20
    pg.configure(archive_command=f"PGVAULT_LOG_LEVEL=debug {repo.archive_command}")
    pg.reload()

    # kill -9 the first worker once it has stored a few segments ahead. Counted in the repository, not
    # by the server's archiver: a fast worker can store the whole backlog while the first call still
    # waits for its own segment, and the archiver counts nothing before that call returns.
    deadline = time.time() + 60
    killed = None
    while killed is None and time.time() < deadline:
        pid = push_worker_pid(spool)
        if pid and len(archived_segments(repo)) >= 3:
            os.kill(pid, signal.SIGKILL)
            killed = pid
        time.sleep(0.02)
    assert killed, "no push worker ran"
    stats = pg.wait_archived(last, timeout=180, fail_on_error=True)
    assert int(stats["failed_count"]) == 0, stats
    wait_push_worker_gone(spool)  # the worker stops by itself ~1 s after the backlog is gone
    assert not process_alive(killed)

    log = pg.log_text()
    archived = re.findall(r"archived ([0-9A-F]{24}) to ", log)
    ahead = re.findall(r"([0-9A-F]{24}) was archived ahead by an earlier call", log)
    assert len(archived) == len(set(archived)), "a segment was uploaded twice"
    assert len(ahead) >= 5, "the worker never served a call"
    # On S3 (no atomic create: each commit waits for the upload, HEADs and a settle time) the worker
    # keeps 4 files in flight per encoding one; on a directory as many as encode.
    flights = {(int(a), int(b)) for a, b in
               re.findall(r"push worker: (\d+) files in flight, (\d+) encoding at once", log)}
    assert flights, "the push worker did not say how many files it keeps in flight"
    factor = 4 if repo.backend == "s3" else 1
    assert all(a == factor * b and b > 1 for a, b in flights), flights
    assert set(backlog) <= set(archived_segments(repo))

    # Every segment of the backlog reads back byte-identical (wal-fetch verifies, then we compare).
    d = workspace.mkdir("check")
    (d / "recovery.signal").write_text("")
    chown_to(d, recursive=True)
    for name, digest in sorted(backlog.items()):
        r = pg.run([repo.tool("wal-fetch"), "--config", str(repo.config_path), name, "out"], cwd=d)
        assert r.rc == 0, r.stderr
        assert _sha256(d / "out") == digest, name
