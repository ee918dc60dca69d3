"""backup-copy between repositories and per-repository retention (issue 14), against a real server,
a local fs repository ("primary") and a Swift S3 one ("cloud") in one config:

1. A full backup and an incremental one copied fs -> S3 by a run killed half-way (no visible backup at
   the destination) and a second run that finishes it; pitr-prepare from the S3 repository alone
   restores the incremental's chain with exact data.
2. A damaged bundle at the source stops the copy (exit 6) naming the object; nothing becomes visible.
3. base-push --repo cloud writes to S3 only; retention-prune applies each repository's own policy (fs
   keeps 2 full backups, S3 keeps 4), and a failing repository does not stop the others.
4. Two base-push runs, one into each repository, in the same second: two backups under one label.
   backup-copy does not count the fs one as present in S3, copies nothing over the S3 one, names the
   label and exits 3; the other backups are copied.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers.pitr import base_push, create_marks, db_state, mark, recover, start_primary
from helpers.proc import PG_USER, run
from helpers.repo import Repo

EXIT_CONFIG = 2
EXIT_CONFLICT = 3
EXIT_CORRUPTION = 6


@pytest.fixture
def repos(workspace, s3_server):
    """(fs, cloud): the fs Repo's config also names the S3 repository as [repositories.cloud] (with its
    own retention table); the cloud Repo's own config holds the S3 repository alone."""
    cloud = Repo(workspace, "s3", s3=s3_server, name="cloud")
    fs = Repo(workspace, "fs")
    fs.update({"repositories.cloud": dict(cloud.settings["repository"])})
    return fs, cloud


def copy(fs: Repo, *args: str, env=None):
    return run(fs.cmd("backup-copy", "--from", "primary", "--to", "cloud", *args), user=PG_USER, env=env,
               timeout=600)


def manifests(repo: Repo) -> list[str]:
    return sorted(k.split("/")[1] for k in repo.keys("backups/") if k.endswith("/manifest.json"))


def test_chain_copied_to_s3_interrupted_then_finished_restores_from_s3_alone(workspace, repos):
    fs, cloud = repos
    pg = start_primary(workspace, fs)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    full = base_push(pg, fs, "--keep", "--annotate", "reason=deploy-42")  # the marks go with the copy
    pg.pgbench(["-t", "100", "-c", "2"])
    mark(pg, "one", 7)
    expected = db_state(pg)
    incr = base_push(pg, fs, "--type", "incremental")
    assert incr["parent"] == full["label"]

    res = copy(fs, env=dict(os.environ, PGVAULT_TEST_COPY_CRASH_AFTER="bundle"))
    assert res.rc == 9, res.stderr
    assert manifests(cloud) == [] and cloud.keys("backups/"), "objects written, no manifest"

    res = copy(fs, "--json")
    assert res.rc == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["copied"] == [full["label"], incr["label"]], summary
    assert manifests(cloud) == [full["label"], incr["label"]]
    assert json.loads(copy(fs, "--json").stdout)["copied"] == [], "nothing left to copy"
    res = run(fs.cmd("archive-info", "--repo", "cloud", "--json"), user=PG_USER)
    at_cloud = {b["label"]: b for b in json.loads(res.stdout)["backups"]}
    assert at_cloud[full["label"]]["kept"] is True and at_cloud[incr["label"]]["kept"] is False, res.stdout
    assert at_cloud[full["label"]]["annotations"] == {"reason": "deploy-42"}, res.stdout
    # Every copied object verifies; the only problems are the WAL between one backup's stop and the next
    # one's start, which backup-copy does not copy (each backup brings its start..stop segments).
    res = run(fs.cmd("archive-info", "--repo", "cloud", "--verify"), user=PG_USER)
    problems = [l.strip() for l in res.stdout.splitlines() if l.strip().startswith("PROBLEM")]
    assert res.rc in (0, 1) and all(p.startswith("PROBLEM missing wal/") for p in problems), res.stdout + res.stderr

    pg.stop()
    shutil.move(str(fs.path), str(fs.path) + ".away")  # S3 alone from here on
    res = run(fs.cmd("pitr-prepare", "--repo", "cloud", "--pgdata", str(workspace.mkdir("dry")), "--dry-run",
                     "--json"), user=PG_USER)
    assert res.rc == 0 and json.loads(res.stdout)["backup"] == incr["label"], res.stdout + res.stderr
    restored, summary = recover(workspace, cloud, "from-s3")
    assert summary["chain"] == [full["label"], incr["label"]], summary
    assert db_state(restored) == expected
    restored.stop()


def test_damaged_object_at_the_source_stops_the_copy_naming_it(workspace, repos):
    fs, cloud = repos
    pg = start_primary(workspace, fs)
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")
    label = base_push(pg, fs)["label"]
    pg.stop()
    key = f"backups/{label}/bundle-000000"
    fs.flip_byte(key, 200)
    res = copy(fs)
    assert res.rc == EXIT_CORRUPTION, res.stderr
    assert key in res.stderr, res.stderr
    assert manifests(cloud) == []
    assert key not in cloud.keys("backups/"), "nothing unverified is committed"


def test_base_push_to_a_named_repository_and_retention_per_repository(workspace, repos):
    fs, cloud = repos
    # Every segment into both repositories (base-push --repo cloud waits for its stop segment there).
    # (cloud's own config: a look-ahead spool of its own, so that the fs push's spool is not taken for it).
    both = f"{fs.archive_command} && {cloud.archive_command}"
    pg = start_primary(workspace, fs, archive_command=both)
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 100) AS x")
    fs_labels = [base_push(pg, fs)["label"] for _ in range(3)]
    # Labels are per second and claimed per repository: a cloud backup in the same second as the last fs
    # one would take the same label for another backup (which backup-copy then counts as present).
    time.sleep(1.1)
    cloud_only = [base_push(pg, fs, "--repo", "cloud")["label"] for _ in range(2)]
    assert manifests(fs) == fs_labels
    assert manifests(cloud) == cloud_only
    res = copy(fs, "--json")
    assert res.rc == 0, res.stderr
    assert json.loads(res.stdout)["wal_already_present"] > 0  # same content: fine
    assert manifests(cloud) == sorted(fs_labels + cloud_only)
    pg.stop()

    # A repository that fails (no repository at its path) listed before cloud: cloud is pruned all the same.
    cloud_table = fs.settings.pop("repositories.cloud")
    fs.update({"retention": {"full_backups": 2},
               "repositories.broken": {"type": "fs", "path": str(workspace.path("not-a-repo"))},
               "repositories.cloud": cloud_table, "repositories.cloud.retention": {"full_backups": 4}})
    res = run(fs.cmd("retention-prune", "--json"), user=PG_USER)
    assert res.rc == EXIT_CONFIG, res.stdout + res.stderr  # the broken one: no repository there
    entries = json.loads(res.stdout)["repositories"]
    assert [r["name"] for r in entries] == ["primary", "broken", "cloud"]
    report = {r["name"]: r for r in entries}
    assert report["broken"]["ok"] is False and report["broken"]["error_kind"] == "not-initialised"
    assert report["primary"]["report"]["policy"]["full_backups"] == 2
    assert report["cloud"]["report"]["policy"]["full_backups"] == 4
    assert manifests(fs) == fs_labels[1:]
    assert manifests(cloud) == sorted(fs_labels + cloud_only)[1:]

    res = run(fs.cmd("retention-prune", "--repo", "cloud", "--dry-run", "--json", "--full-backups", "1"), user=PG_USER)
    assert res.rc == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["policy"]["full_backups"] == 1, "the flag overrides the repository's own table"


def test_one_label_for_two_backups_in_two_repositories_is_not_copied_over(workspace, repos):
    fs, cloud = repos
    both = f"{fs.archive_command} && {cloud.archive_command}"
    pg = start_primary(workspace, fs, archive_command=both)
    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 100) AS x")
    fs_labels = [base_push(pg, fs)["label"]]  # a backup the destination lacks: copied all the same
    cloud_labels = []
    for _ in range(5):  # both runs start just after a second begins: they claim in the same second
        time.sleep(1.05 - time.time() % 1)
        with ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(base_push, pg, fs), pool.submit(base_push, pg, fs, "--repo", "cloud")]
            ours, theirs = (r.result() for r in runs)
        fs_labels.append(ours["label"])
        cloud_labels.append(theirs["label"])
        if ours["label"] == theirs["label"]:
            break
    else:
        pytest.fail("no two base-push runs in the same second in 5 tries")
    label = ours["label"]
    assert ours["start_lsn"] != theirs["start_lsn"] or ours["stop_lsn"] != theirs["stop_lsn"], (ours, theirs)
    cloud_manifest = cloud.read(f"backups/{label}/manifest.json")

    res = copy(fs, "--json")
    assert res.rc == EXIT_CONFLICT, res.stdout + res.stderr
    summary = json.loads(res.stdout)
    copied = [l for l in fs_labels if l != label]
    assert summary["copied"] == copied and summary["already_present"] == [], summary
    assert [c["label"] for c in summary["not_copied"]] == [label], summary
    assert "another backup under this label" in summary["not_copied"][0]["reason"], summary
    err = [l for l in res.stderr.splitlines() if " error: " in l]
    assert len(err) == 1 and label in err[0] and "not copied" in err[0], res.stderr
    assert manifests(cloud) == sorted(set(copied + cloud_labels))
    assert cloud.read(f"backups/{label}/manifest.json") == cloud_manifest, "the S3 backup was not touched"
    res = copy(fs, "--backup", label)
    assert res.rc == EXIT_CONFLICT and label in res.stderr, res.stdout + res.stderr
    pg.stop()
