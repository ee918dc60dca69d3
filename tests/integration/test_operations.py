"""Operations against a real PostgreSQL 15 (issue 15): kept backups and annotations, failure
notifications, and base-push from cron (quiet on success, one run at a time per repository).

1. A backup taken with --keep --annotate survives a retention run that would delete it (and so does the
   WAL from its start), archive-info shows the mark; after retention-prune --release it goes.
2. [notify]: exactly one JSON event per failed base-push, none on success (on = "failure"); a failing
   notifier leaves the exit code as it was.
3. Two base-push runs at once: the second fails with exit 3 naming the holder (host, pid, since); a
   successful run with stderr not a terminal prints nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from helpers.pitr import archive_info_json, base_push, segments, start_primary
from helpers.proc import PG_USER, run, user_popen_kwargs

EXIT_LOCKED = 3
BAD_CONNINFO = "host=/nonexistent port=1 connect_timeout=2"


def prune(repo, *args: str):
    return run(repo.cmd("retention-prune", *args), user=PG_USER, cwd="/", timeout=300)


def events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_kept_backup_survives_retention_until_released(workspace, repo):
    pg = start_primary(workspace, repo)
    kept = base_push(pg, repo, "--keep", "--annotate", "reason=pre-upgrade", "--annotate", "ticket=OPS-7")["label"]
    pg.psql("CREATE TABLE t AS SELECT 1 AS x")
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    middle = base_push(pg, repo)["label"]
    newest = base_push(pg, repo)["label"]

    info = {b["label"]: b for b in archive_info_json(repo)["backups"]}
    assert info[kept]["kept"] is True and info[middle]["kept"] is False
    assert info[kept]["annotations"] == {"reason": "pre-upgrade", "ticket": "OPS-7"}
    kept_start = info[kept]["start_wal"]

    res = prune(repo, "--full-backups", "1")
    assert res.rc == 0, res.stderr
    left = {b["label"] for b in archive_info_json(repo)["backups"]}
    assert left == {kept, newest}, left
    assert kept_start in segments(repo), "the kept backup's WAL was deleted"

    res = prune(repo, "--release", kept)
    assert res.rc == 0, res.stderr
    assert f"backup {kept}: not kept" in res.stdout
    res = prune(repo, "--full-backups", "1")
    assert res.rc == 0, res.stderr
    assert {b["label"] for b in archive_info_json(repo)["backups"]} == {newest}


def test_notifier_gets_one_event_per_failure(workspace, repo):
    if repo.backend != "fs":
        pytest.skip("the notification does not depend on the backend")
    sink = workspace.path("events.jsonl")
    repo.update({"notify": {"command": f"cat >> {sink}", "on": "failure"}})
    res = run(repo.cmd("base-push", "--conninfo", BAD_CONNINFO), user=PG_USER, cwd="/")
    assert res.rc == 1, res.stderr
    [event] = events(sink)
    assert event["tool"] == "base-push" and event["event"] == "failure" and event["exit_code"] == 1
    assert event["error_kind"] and "connect" in event["message"]
    assert event["host"] == socket.gethostname() and repo.settings["repository"]["path"] in event["repository"]

    repo.update({"notify": {"command": "echo notifier broke >&2; exit 9"}})
    res = run(repo.cmd("base-push", "--conninfo", BAD_CONNINFO), user=PG_USER, cwd="/")
    assert res.rc == 1, res.stderr
    assert "exited with code 9" in res.stderr and "notifier broke" in res.stderr
    assert len(events(sink)) == 1


def test_base_push_runs_one_at_a_time_and_quietly(workspace, repo):
    if repo.backend != "fs":
        pytest.skip("the lock works the same on every backend (common/repo/lock.h); fs keeps this short")
    sink = workspace.path("events.jsonl")
    repo.update({"notify": {"command": f"cat >> {sink}"}, "backup": {"bundle_size": "1MiB", "parallel": 1},
                 "compression": {"level": 19}})
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)  # with zstd -19 and one worker, a few seconds: long enough to overlap
    first = subprocess.Popen(repo.cmd("base-push", "--conninfo", pg.conninfo), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=pg.workdir, **user_popen_kwargs(PG_USER, pg.pg_env()))
    try:
        deadline = time.monotonic() + 60
        while "locks/base-push" not in repo.keys("locks/"):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
        second = pg.run(repo.cmd("base-push", "--conninfo", pg.conninfo))
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.rc == EXIT_LOCKED, second.stderr
    assert f"is locked by base-push on host {socket.gethostname()} pid {first.pid} since" in second.stderr
    [event] = events(sink)
    assert event["exit_code"] == EXIT_LOCKED and event["error_kind"] == "conflict"

    # From cron: stderr is a pipe, no level configured: a successful run prints nothing, notifies nobody.
    env = pg.pg_env()
    env.pop("PGVAULT_LOG_LEVEL", None)
    repo.update({"compression": {"level": 1}})
    res = run(repo.cmd("base-push", "--conninfo", pg.conninfo), user=PG_USER, env=env, cwd=pg.workdir)
    assert res.rc == 0 and res.stdout == "" and res.stderr == "", res.stderr
    assert len(events(sink)) == 1
    assert "locks/base-push" not in repo.keys("locks/")
