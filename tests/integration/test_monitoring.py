"""archive-info for monitoring against a real PostgreSQL 15 (and Swift S3 for a second repository).

1. --check as a backup ages (thresholds of seconds): ok -> warning -> critical; a quiet server (nothing
   waiting to be archived) is no false alarm however old the newest archived WAL is, while the same
   thresholds without a server to ask are critical; archive_command failing: critical.
2. --prometheus: the file parses with prometheus_client's parser and holds the repository's figures.
3. Two repositories (fs + S3) in one config: archive-info lists both with the lag of the one behind,
   --check and the metrics name it; an unreadable third repository is an error for it alone.
"""

from __future__ import annotations

import calendar
import json
import time

from prometheus_client.parser import text_string_to_metric_families

from helpers.pitr import archive_info, base_push, start_primary
from helpers.proc import make_dir
from helpers.repo import Repo

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def check(repo, *sets: str):
    args = ["--check"]
    for s in sets:
        args += ["--set", "check." + s]
    return archive_info(repo, *args)


def unix(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def wait_failed(pg, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while int(pg.archiver_stats()["failed_count"]) == 0:
        assert time.monotonic() < deadline, "archive_command never failed"
        time.sleep(0.2)


def test_check_ages_quiet_server_and_failing_archiving(workspace):
    repo = Repo(workspace, "fs")
    pg = start_primary(workspace, repo)
    backup = base_push(pg, repo)
    pg.wait_archived(pg.switch_wal())
    repo.update({"backup": {"conninfo": pg.conninfo}})
    age = time.time() - unix(backup["stop_time"])
    base = ["backup_age_warning=%ds" % (age + 3), "backup_age_critical=%ds" % (age + 6)]
    res = check(repo, *base)
    assert res.rc == OK and res.stdout.startswith("PGVAULT OK"), res.stdout + res.stderr
    time.sleep(3.2)
    res = check(repo, *base)
    assert res.rc == WARNING, res.stdout + res.stderr
    assert res.stdout.splitlines()[1].startswith("WARNING primary: newest backup " + backup["label"])
    time.sleep(3)
    res = check(repo, *base)
    assert res.rc == CRITICAL and res.stdout.startswith("PGVAULT CRITICAL"), res.stdout

    # Quiet server: the newest archived WAL is older than both WAL thresholds, nothing is waiting.
    quiet = ["wal_age_warning=1s", "wal_age_critical=2s"]
    time.sleep(2)
    assert check(repo, *quiet).rc == OK
    repo.update({"backup": {"conninfo": ""}})
    res = check(repo, *quiet)
    assert res.rc == CRITICAL and "newest archived WAL" in res.stdout, res.stdout
    repo.update({"backup": {"conninfo": pg.conninfo}})

    # Metrics of this repository, parsed.
    prom = make_dir(workspace.path("textfile"), mode=0o755) / "pgvault.prom"
    assert archive_info(repo, "--prometheus", str(prom)).rc == 0
    m = samples(prom.read_text())
    r = frozenset({("repository", "primary")})
    assert m[("pgvault_repository_up", r)] == 1
    assert m[("pgvault_backups", r | {("type", "full")})] == 1
    assert m[("pgvault_backup_newest_timestamp_seconds", r)] == unix(backup["stop_time"])
    wal = [k for k in repo.keys("wal/") if len(k.rsplit("/", 1)[-1]) == 24]
    assert m[("pgvault_wal_segments", r)] == len(wal)
    assert m[("pgvault_wal_gap_segments", r)] == 0
    assert m[("pgvault_owed_segments", r)] == 0
    stats = pg.archiver_stats()
    assert m[("pgvault_archiver_archived_total", frozenset())] == int(stats["archived_count"])
    assert m[("pgvault_archiver_ready_files", frozenset())] == 0

    # archive_command failing: critical at once.
    pg.configure(archive_command="false")
    pg.reload()
    pg.psql("CREATE TABLE t AS SELECT 1 AS x")
    pg.switch_wal()
    wait_failed(pg)
    res = check(repo, "backup_age_warning=1h", "backup_age_critical=2h")
    assert res.rc == CRITICAL, res.stdout
    assert "CRITICAL server: archive_command failing" in res.stdout
    res = archive_info(repo, "--check", "--json")
    assert json.loads(res.stdout)["findings"][0]["rule"] == "archiving"
    res = check(repo, "backup_age_warning=soon")
    assert res.rc == UNKNOWN and res.stdout.startswith("PGVAULT UNKNOWN - "), res.stdout


def test_two_repositories_lag_and_an_unreadable_one(workspace, s3_server):
    local = Repo(workspace, "fs", name="local")
    cloud = Repo(workspace, "s3", s3=s3_server, name="cloud")
    # Without look-ahead: a detached push worker of the cloud's calls would go on pushing the .ready
    # files of the next second (README, [push] parallel) after archive_command stops calling it.
    cloud.update({"push": {"parallel": 1}})
    pg = start_primary(workspace, local,
                       archive_command=f"{local.archive_command} && {cloud.archive_command}")
    base_push(pg, local)
    pg.wait_archived(pg.switch_wal())
    pg.configure(archive_command=local.archive_command)  # the cloud copy falls behind by two segments
    pg.reload()
    pg.psql("CREATE TABLE t AS SELECT 1 AS x")
    pg.switch_wal()
    pg.psql("INSERT INTO t VALUES (2)")
    pg.wait_archived(pg.switch_wal())
    cloud_settings = dict(cloud.settings["repository"], required=False)
    local.update({"repositories.cloud": cloud_settings})

    info = json.loads(archive_info(local, "--json").stdout)
    names = [r["name"] for r in info["repositories"]]
    assert names == ["primary", "cloud"]
    primary, behind = info["repositories"]
    assert primary["lag"]["segments_behind"] == 0 and behind["lag"]["segments_behind"] == 2
    assert behind["backups"] == [] and primary["backups"][0]["type"] == "full"
    assert behind["wal"][0]["segments"] == primary["wal"][0]["segments"] - 2
    text = archive_info(local).stdout
    assert "=== repository cloud ===" in text and "2 segments behind the most advanced" in text
    one = json.loads(archive_info(local, "--json", "--repo", "cloud").stdout)
    assert one["name"] == "cloud" and "repositories" not in one  # the single-repository shape

    res = check(local, "lag_warning=1", "lag_critical=10")
    assert "WARNING cloud: 2 segments behind" in res.stdout, res.stdout
    m = samples(archive_info(local, "--prometheus", "-").stdout)
    assert m[("pgvault_wal_lag_segments", frozenset({("repository", "cloud")}))] == 2

    local.update({"repositories.gone": {"type": "fs", "path": str(workspace.path("nowhere"))}})
    res = archive_info(local, "--json")
    assert res.rc == 3, res.stderr
    gone = json.loads(res.stdout)["repositories"][2]
    assert gone["name"] == "gone" and "repo-init" in gone["error"]
    assert json.loads(res.stdout)["repositories"][1]["wal"], "the others are still reported"
    res = archive_info(local, "--verify", "--repo", "cloud")
    assert res.rc == 0, res.stdout + res.stderr
    res = check(local, "backup_age_warning=1h", "lag_warning=0", "lag_critical=0")
    assert "UNKNOWN gone:" in res.stdout, res.stdout
