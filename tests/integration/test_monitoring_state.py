"""Local monitoring state against a real PostgreSQL 15 (repo/wal_state.h): the WAL tools' counters and
the last --verify.

1. After N archived segments and M fetched ones (and one file not in the archive) the metrics count
   exactly those, with their bytes; archive_command failing (the repository unwritable) counts each
   failed call under its error kind, as many as pg_stat_archiver's failed_count.
2. --check's verify_age: never verified (a warning once a threshold is set), ok right after --verify,
   warning then critical as the record ages (its recorded time moved back); a record saying the last verify
   failed is critical.
"""

from __future__ import annotations

import json
import os
import time

from helpers.pitr import archive_info, base_push, start_primary
from helpers.proc import PG_USER, run
from helpers.repo import Repo
from test_monitoring import CRITICAL, OK, WARNING, check, samples

SEGMENT = 16 * 1024 * 1024
KINDS = ("not-found", "duplicate", "corruption", "auth", "transient", "io", "config", "invalid-input",
         "foreign-cluster", "conflict", "interrupted", "not-initialised", "internal")


def metrics(repo) -> dict:
    res = archive_info(repo, "--prometheus", "-")
    assert res.rc == 0, res.stderr
    return samples(res.stdout)


def counter(m: dict, name: str, **labels) -> float:
    return m.get((name, frozenset({("repository", "primary"), *labels.items()})), 0)


def test_wal_counters_count_archived_fetched_and_failed_calls(workspace):
    repo = Repo(workspace, "fs")
    pg = start_primary(workspace, repo)
    pg.wait_archived(pg.switch_wal())
    before = metrics(repo)
    archived_before = int(pg.archiver_stats()["archived_count"])
    assert counter(before, "pgvault_wal_archived_total") == archived_before
    names = []
    for _ in range(3):
        pg.psql("CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1)")
        names.append(pg.switch_wal())
        pg.wait_archived(names[-1])
    m = metrics(repo)
    assert counter(m, "pgvault_wal_archived_total") == archived_before + 3
    assert counter(m, "pgvault_wal_archived_total") == int(pg.archiver_stats()["archived_count"])
    assert (counter(m, "pgvault_wal_archived_bytes_total")
            - counter(before, "pgvault_wal_archived_bytes_total")) == 3 * SEGMENT
    assert all(counter(m, "pgvault_wal_push_failures_total", kind=k) == 0 for k in KINDS)

    # Two segments fetched, one name not in the archive.
    dest = workspace.mkdir("fetched")
    for name in names[:2]:
        assert run(repo.cmd("wal-fetch", name, str(dest / name)), user=PG_USER, cwd=dest).rc == 0
    assert run(repo.cmd("wal-fetch", "0000000100000000000000F0", str(dest / "x")), user=PG_USER,
               cwd=dest).rc == 1
    m = metrics(repo)
    assert counter(m, "pgvault_wal_fetched_total") == 2
    assert counter(m, "pgvault_wal_fetched_bytes_total") == 2 * SEGMENT
    assert counter(m, "pgvault_wal_fetch_missing_total") == 1
    assert all(counter(m, "pgvault_wal_fetch_failures_total", kind=k) == 0 for k in KINDS)

    # archive_command failing: the repository's WAL folders are not writable for postgres.
    folders = {d: os.stat(d).st_mode & 0o7777 for d, _, _ in os.walk(repo.path / "wal")}
    for d in folders:
        os.chmod(d, 0o500)
    try:
        pg.psql("INSERT INTO t VALUES (2)")
        pg.switch_wal()
        deadline = time.monotonic() + 30
        while int(pg.archiver_stats()["failed_count"]) < 2:
            assert time.monotonic() < deadline, "archive_command never failed"
            time.sleep(0.2)
        failed = int(pg.archiver_stats()["failed_count"])
        m = metrics(repo)
    finally:
        for d, mode in folders.items():
            os.chmod(d, mode)
    by_kind = {k: counter(m, "pgvault_wal_push_failures_total", kind=k) for k in KINDS}
    assert by_kind["io"] >= 2 and sum(by_kind.values()) == by_kind["io"], by_kind
    assert by_kind["io"] in (failed, failed + 1), (by_kind, failed)  # a retry may run meanwhile
    assert counter(m, "pgvault_wal_archived_total") == archived_before + 3


def verify_record(repo) -> "os.PathLike":
    state = repo.settings["check"]["state_dir"]
    found = [os.path.join(d, "verify.json") for d, _, files in os.walk(state) if "verify.json" in files]
    assert len(found) == 1, found
    return found[0]


def test_verify_age(workspace):
    repo = Repo(workspace, "fs")
    pg = start_primary(workspace, repo)
    base_push(pg, repo)
    pg.wait_archived(pg.switch_wal())
    res = check(repo, "verify_age_warning=1h")
    assert res.rc == WARNING and "WARNING primary: never verified" in res.stdout, res.stdout
    assert check(repo).rc == OK, "verify_age is off by default"

    assert archive_info(repo, "--verify").rc == 0
    ages = ["verify_age_warning=1h", "verify_age_critical=2h"]
    res = check(repo, *ages)
    assert res.rc == OK, res.stdout + res.stderr
    m = metrics(repo)
    assert counter(m, "pgvault_verify_last_ok") == 1
    assert 0 <= counter(m, "pgvault_verify_age_seconds") < 600
    # The record ages (its time moved back rather than waiting, so a slow machine cannot skip a grade).
    path = verify_record(repo)

    def age_record(seconds):
        with open(path) as f:
            record = json.load(f)
        record["time"] = int(time.time()) - seconds
        with open(path, "w") as f:
            json.dump(record, f)

    age_record(90 * 60)
    res = check(repo, *ages)
    assert res.rc == WARNING and "WARNING primary: last verified" in res.stdout, res.stdout
    assert 90 * 60 <= counter(metrics(repo), "pgvault_verify_age_seconds") < 100 * 60
    age_record(3 * 3600)
    assert check(repo, *ages).rc == CRITICAL

    # A record saying the last verify found problems: critical whatever the thresholds.
    with open(path) as f:
        record = json.load(f)
    record.update(ok=False, problems=2, time=int(time.time()))
    with open(path, "w") as f:
        json.dump(record, f)
    res = check(repo)
    assert res.rc == CRITICAL and "the last verify" in res.stdout and "failed: 2 problems" in res.stdout, res.stdout
    assert counter(metrics(repo), "pgvault_verify_last_ok") == 0
    # The next verify that passes replaces it.
    assert archive_info(repo, "--verify").rc == 0
    assert check(repo).rc == OK
