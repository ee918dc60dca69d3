"""Helpers for the point-in-time recovery tests (test_pitr.py): a primary that archives through
wal-push, base-push, pitr-prepare into a fresh cluster, archive-info, and an exact database fingerprint.

Typical use::

    pg = start_primary(workspace, repo)
    label = base_push(pg, repo)["label"]
    ... writes ...
    restored, summary = recover(workspace, repo, "r1", "--target-lsn", lsn)
    assert db_state(restored) == expected
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from helpers.proc import PG_USER, RunResult, run
from helpers.repo import Repo, wal_key  # noqa: F401  (re-exported for the tests)

SEGMENT_LEN = 24


def start_primary(workspace, repo: Repo, name: str = "primary", **settings):
    """initdb (with checksums) + archiving into `repo` + start; returns the PgCluster."""
    pg = workspace.cluster(name)
    pg.initdb(checksums=True)
    conf = dict(wal_level="replica", archive_mode="on", archive_command=repo.archive_command,
                max_wal_size="1GB", checkpoint_timeout="30min")
    conf.update(settings)
    pg.configure(conf)
    pg.start()
    return pg


def base_push(pg, repo: Repo, *args: str, timeout: float = 600) -> dict:
    """Runs base-push against `pg`; returns its --json summary (asserts success)."""
    res = pg.run(repo.cmd("base-push", "--conninfo", pg.conninfo, "--json", *args), timeout=timeout)
    assert res.rc == 0, f"base-push failed ({res.rc}): {res.stderr}"
    return json.loads(res.stdout)


def pitr_prepare(repo: Repo, datadir: Path, *args: str, timeout: float = 600) -> RunResult:
    """Runs pitr-prepare as the postgres user (wal-fetch is resolved first so that it sits beside
    pitr-prepare, where pitr-prepare looks for it)."""
    repo.tool("wal-fetch")
    return run(repo.cmd("pitr-prepare", "--pgdata", str(datadir), *args), user=PG_USER,
               cwd="/", timeout=timeout)


def archive_info(repo: Repo, *args: str, timeout: float = 600) -> RunResult:
    return run(repo.cmd("archive-info", *args), user=PG_USER, timeout=timeout)


def archive_info_json(repo: Repo, *args: str) -> dict:
    res = archive_info(repo, "--json", *args)
    assert res.rc in (0, 1), f"archive-info failed ({res.rc}): {res.stderr}"
    return json.loads(res.stdout)


def recover(workspace, repo: Repo, name: str, *args: str, archive: bool = False, wait: bool = True,
            timeout: float = 300):
    """pitr-prepare into a new cluster `name`, start it and (with `wait`) wait until recovery ended.

    Restored clusters inherit the primary's postgresql.conf; unless `archive` (pitr-prepare --archive-mode
    preserve), archiving is turned off so that their promotion (a new timeline) does not land in the
    repository and change what 'latest' means for the next restore. Returns (cluster, pitr-prepare JSON
    summary).
    """
    cluster = workspace.cluster(name)
    if archive:
        args = ("--archive-mode", "preserve", *args)
    res = pitr_prepare(repo, cluster.datadir, "--json", *args)
    assert res.rc == 0, f"pitr-prepare {' '.join(args)} failed ({res.rc}): {res.stderr}"
    summary = json.loads(res.stdout)
    if not archive:
        cluster.configure(archive_mode="off")
    cluster.start(wait=False)
    if wait:
        cluster.wait_for_recovery_end(timeout=timeout)
    return cluster, summary


def db_state(pg) -> tuple[str, ...]:
    """An exact fingerprint of the test data: every pgbench account balance, the history row count, and
    the `marks` table (written by `mark`)."""
    return (
        pg.scalar("SELECT md5(string_agg(aid || ':' || abalance, ',' ORDER BY aid)) FROM pgbench_accounts"),
        pg.scalar("SELECT count(*) FROM pgbench_history"),
        pg.scalar("SELECT coalesce(string_agg(step, ',' ORDER BY id), '') FROM marks"),
    )


def create_marks(pg) -> None:
    pg.psql("CREATE TABLE marks (id serial PRIMARY KEY, step text NOT NULL)")


def mark(pg, step: str, delta: int) -> None:
    """One committed change of the data: a row in `marks` and a deterministic balance update."""
    pg.psql(f"BEGIN; INSERT INTO marks (step) VALUES ('{step}'); "
            f"UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid % 97 = {delta % 97}; COMMIT;")


def segments(repo: Repo, timeline: Optional[int] = None) -> list[str]:
    """Archived WAL segment names (no .partial/.history/.backup), sorted."""
    out = []
    for k in repo.keys("wal/"):
        name = k.rsplit("/", 1)[-1]
        if len(name) == SEGMENT_LEN and all(c in "0123456789ABCDEF" for c in name):
            if timeline is None or int(name[:8], 16) == timeline:
                out.append(name)
    return sorted(out)

