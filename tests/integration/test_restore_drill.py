"""restore-drill against real PostgreSQL: a drill passes on a good repository and reports the right row
counts, RTO and RPO; it fails with its named outcome on a corrupt bundle, a missing WAL segment, a
server that cannot start and a --sql query that is not true; SIGTERM ends it with 130. In every case the server it started is
gone and its work directory removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from helpers.pg import DEBIAN_BINDIR, PG_BINDIR
from helpers.pitr import base_push, segments, start_primary, wal_key
from helpers.proc import PG_USER, run
from helpers.repo import Repo

EXIT_RESTORE_FAILED = 3
EXIT_SERVER_FAILED = 4
EXIT_CHECK_FAILED = 5


def drill_cmd(repo: Repo, *args: str) -> list[str]:
    """restore-drill's command line, with wal-fetch beside it (where its restore_command finds it) and,
    for another PostgreSQL version than Debian's 15, that version's server programs configured."""
    repo.tool("wal-fetch")
    if PG_BINDIR != DEBIAN_BINDIR and "bin_dir" not in repo.settings.get("drill", {}):
        repo.update({"drill": {"bin_dir": str(PG_BINDIR)}})
    return repo.cmd("restore-drill", *args)


def drill(repo: Repo, *args: str, user=None):
    """Runs restore-drill --json (as root unless `user`); returns (rc, report or None, stderr)."""
    res = run(drill_cmd(repo, "--json", "--timeout", "90s", *args), user=user, cwd="/", timeout=240)
    report = json.loads(res.stdout) if res.stdout.strip() else None
    return res.rc, report, res.stderr


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain `text` (a drill's work directory)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def assert_cleaned_up(report: dict) -> None:
    work_dir = report["work_dir"]
    assert work_dir and not os.path.exists(work_dir), f"work directory left behind: {work_dir}"
    assert processes_mentioning(work_dir) == [], processes_mentioning(work_dir)


def primary_with_backup(workspace, repo: Repo, rows_before: int = 1000, rows_after: int = 234):
    """A primary archiving into `repo` with table t: `rows_before` rows in a base backup, `rows_after`
    more written after it and archived. Returns (primary, backup label, segments archived after it)."""
    pg = start_primary(workspace, repo)
    pg.psql(f"CREATE TABLE t AS SELECT g AS id FROM generate_series(1, {rows_before}) g")
    label = base_push(pg, repo)["label"]
    after = []
    for part in range(2):
        pg.psql(f"INSERT INTO t SELECT g FROM generate_series(1, {rows_after // 2 + part * (rows_after % 2)}) g")
        after.append(pg.switch_wal())
        pg.wait_archived(after[-1], fail_on_error=True)
    return pg, label, after


def sql_file(workspace, name: str, text: str) -> Path:
    """A --sql file the postgres user can read."""
    path = workspace.path(name)
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


def test_drill_passes_and_reports_counts_rto_rpo(workspace, repo):
    pg, label, _ = primary_with_backup(workspace, repo)
    pg.psql("CREATE DATABASE app")
    pg.psql("CREATE SCHEMA s; CREATE TABLE s.u AS SELECT 1 AS x UNION ALL SELECT 2", dbname="app")
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    metrics = workspace.path("drill.prom")
    newest_before = segments(repo)[-1]
    rc, report, err = drill(repo, "--count", "postgres.public.t", "--count", "app.s.u",
                            "--prometheus", str(metrics))
    assert rc == 0, err
    assert report["passed"] and report["failure"] == "", report
    assert report["backup"] == label
    assert report["counts"] == {"postgres.public.t": 1234, "app.s.u": 2}, report
    names = {c["name"] for c in report["checks"]}
    assert {"database postgres", "database app", "database template1"} <= names, names
    assert report["restore_seconds"] > 0 and report["recovery_seconds"] > 0
    assert abs(report["rto_seconds"] - report["restore_seconds"] - report["recovery_seconds"]) < 1e-6
    assert report["rpo_seconds"] is not None and 0 <= report["rpo_seconds"] < 600, report
    # The primary keeps running: a segment may be archived while the drill runs.
    assert newest_before <= report["newest_wal"] <= segments(repo)[-1], report["newest_wal"]
    assert report["restored_bytes"] > 0 and report["backup_bytes"] > 0
    gauges = {s.name + json.dumps(s.labels, sort_keys=True): s.value
              for fam in text_string_to_metric_families(metrics.read_text()) for s in fam.samples}
    assert gauges["pgvault_drill_success{}"] == 1
    assert gauges['pgvault_drill_table_rows{"table": "postgres.public.t"}'] == 1234
    assert abs(gauges["pgvault_drill_rto_seconds{}"] - report["rto_seconds"]) < 0.01
    assert_cleaned_up(report)


def test_drill_fails_on_a_corrupt_bundle(workspace):
    repo = Repo(workspace, "fs")
    _, label, _ = primary_with_backup(workspace, repo)
    bundles = [k for k in repo.keys(f"backups/{label}/") if "/bundle-" in k]
    victim = max(bundles, key=lambda k: len(repo.read(k)))
    repo.flip_byte(victim, len(repo.read(victim)) // 2)
    work_dir = workspace.path("drill-work")  # absent: created, then removed
    rc, report, err = drill(repo, "--work-dir", str(work_dir))
    assert rc == EXIT_RESTORE_FAILED, err
    assert report["failure"] == "restore-failed" and label in report["reason"], report
    assert report["work_dir"] == str(work_dir)
    assert_cleaned_up(report)


def test_drill_fails_on_a_missing_wal_segment(workspace):
    repo = Repo(workspace, "fs")
    _, _, after = primary_with_backup(workspace, repo)
    repo.delete(wal_key(after[0]))
    rc, report, err = drill(repo)
    assert rc == EXIT_RESTORE_FAILED, err
    assert report["failure"] == "restore-failed" and after[0] in report["reason"], report
    assert_cleaned_up(report)


def test_drill_fails_on_a_false_sql_check_and_a_server_that_cannot_start_and_restores_to_a_target(workspace):
    repo = Repo(workspace, "fs")
    primary_with_backup(workspace, repo)
    sql = sql_file(workspace, "checks.sql",
                   "-- the restored data\nSELECT count(*) = 1234 FROM t;\nSELECT count(*) = 1 FROM t;\n")
    # As the postgres user (the server runs as the drill's own user then).
    rc, report, err = drill(repo, "--sql", str(sql), user=PG_USER)
    assert rc == EXIT_CHECK_FAILED, err
    assert report["failure"] == "check-failed" and "sql #2" in report["reason"], report
    assert [c["ok"] for c in report["checks"] if c["name"].startswith("sql")] == [True, False], report
    assert_cleaned_up(report)

    # To a target (pitr-prepare's flags): the end of the backup, before the rows written after it.
    rc, report, err = drill(repo, "--target", "immediate", "--count", "postgres.public.t")
    assert rc == 0, err
    assert report["counts"] == {"postgres.public.t": 1000}, report
    assert_cleaned_up(report)

    rc, report, err = drill(repo, "--bin-dir", str(workspace.path("no-such-bin")))
    assert rc == EXIT_SERVER_FAILED, err
    assert report["failure"] == "server-failed" and "no-such-bin/postgres" in report["reason"], report
    assert_cleaned_up(report)


def test_drill_stops_the_server_and_removes_its_directory_on_sigterm(workspace):
    repo = Repo(workspace, "fs")
    primary_with_backup(workspace, repo)
    sql = sql_file(workspace, "slow.sql", "SELECT pg_sleep(3)::text = '';\nSELECT true;\n")
    work_dir = workspace.path("drill-work")
    proc = subprocess.Popen(drill_cmd(repo, "--work-dir", str(work_dir), "--sql", str(sql)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        deadline = time.monotonic() + 60
        while not processes_mentioning(f"-D {work_dir}/data"):  # the server is up (its checks take 3 s or more)
            assert proc.poll() is None and time.monotonic() < deadline, "the drill's server never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted by SIGTERM" in err, err
    assert not work_dir.exists(), "work directory left behind"
    assert processes_mentioning(str(work_dir)) == []


def test_drill_refuses_bad_options_before_touching_anything(workspace):
    repo = Repo(workspace, "fs")
    rc, _, err = drill(repo, "--count", "public.t")
    assert rc == 2 and "public.t" in err and "database.schema.table" in err, err
    busy = workspace.mkdir("busy")
    (busy / "keep").write_text("x")
    rc, _, err = drill(repo, "--work-dir", str(busy))
    assert rc == 2 and "not an empty directory" in err, err
    assert (busy / "keep").read_text() == "x"
    # The server's socket goes into the work directory: PostgreSQL and libpq split a socket directory
    # at commas, and a socket path has at most 107 bytes.
    for bad, why in ((workspace.path("drill,work"), "contains a comma"),
                     (workspace.path("d" * 100), "bytes long")):
        rc, _, err = drill(repo, "--work-dir", str(bad))
        assert rc == 2 and why in err and str(bad) in err and len(err.strip().splitlines()) == 1, err
        assert not bad.exists()
    rc, _, err = drill(repo, "--sql", str(sql_file(workspace, "empty.sql", "-- nothing\n")))
    assert rc == 2 and "holds no query" in err, err
