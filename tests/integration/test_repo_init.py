"""repo-init creates a repository; no other tool does (issue 10).

An unmounted backup mount point or a mistyped path or bucket must neither silently become a new
repository (filling the root disk) nor look like an empty one ("0 problems", exit 0). Every tool but
repo-init refuses such a location with one line naming it and repo-init, and writes nothing there.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import push
from helpers.proc import PG_USER, chown_to, run
from helpers.repo import Repo

ABORT = 200


@pytest.fixture(params=["fs", "s3"])
def bare(request, workspace):
    """A configured location (fs: a path that does not exist; s3: an empty bucket) without repo-init."""
    if request.param == "s3":
        return Repo(workspace, "s3", s3=request.getfixturevalue("s3_server"), name="bare", init=False)
    return Repo(workspace, "fs", name="bare", init=False)


def location(repo: Repo) -> str:
    return f"fs:{repo.path}" if repo.backend == "fs" else f"s3://{repo.bucket}"


def nothing_there(repo: Repo) -> bool:
    if repo.backend == "fs":
        return not os.path.lexists(repo.path)
    return repo.keys() == []


def one_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def tool(repo: Repo, name: str, *args: str, cwd=None):
    return run(repo.cmd(name, *args), user=PG_USER, cwd=cwd or repo.dir)


def snapshot(repo: Repo) -> dict[str, bytes]:
    return {k: repo.read(k) for k in repo.keys()}


def test_no_tool_but_repo_init_creates_a_repository(primary, bare, workspace, recovery_dir):
    s0, s1 = primary.segments[0], primary.segments[1]
    history = workspace.mkdir("walsrc", mode=0o755) / "00000002.history"
    history.write_text("1\t0/3000000\tno recovery target specified\n")
    chown_to(history)

    def refused(res, code):
        assert res.rc == code, (code, res.rc, res.stderr)
        line = one_line(res.stderr)
        assert location(bare) in line and "repo-init" in line, line
        assert nothing_there(bare), bare.keys()

    # wal-push (a segment, and a history file, which has no page header to check): a config error,
    # and no push spool made for the location either.
    spool = Path(bare.settings["push"]["spool"])
    refused(push(primary, bare, f"pg_wal/{s0}"), 2)
    refused(push(primary, bare, str(history)), 2)
    assert list(spool.iterdir()) == [], list(spool.iterdir())
    # archive-info, with and without --verify: no verdict (3), never "0 problems".
    refused(tool(bare, "archive-info"), 3)
    refused(tool(bare, "archive-info", "--verify"), 3)
    refused(tool(bare, "archive-info", "--json"), 3)
    # base-push, retention-prune (2) and pitr-prepare (3: nothing to restore from, nothing written).
    refused(tool(bare, "base-push", "--conninfo", primary.conninfo), 2)
    refused(tool(bare, "retention-prune", "--full-backups", "1"), 2)
    target = workspace.path("restore-target")
    refused(tool(bare, "pitr-prepare", "--pgdata", str(target)), 3)
    assert not target.exists()
    # wal-fetch already refuses a location without pgvault.json (never "not in the archive").
    r = run(bare.cmd("wal-fetch", s0, "pg_wal/RECOVERYXLOG"), user=PG_USER, cwd=recovery_dir)
    assert r.rc == ABORT and "pgvault.json" in r.stderr, r.stderr
    assert nothing_there(bare)

    # repo-init creates it; then everything works.
    r = bare.init()
    assert f"initialised repository {location(bare)}" in r.stdout, r.stdout
    assert bare.keys() == ["pgvault.repo.json"]
    marker = json.loads(bare.read("pgvault.repo.json"))
    assert marker["format"] == 1 and marker["created"].endswith("Z")
    assert push(primary, bare, f"pg_wal/{s0}").rc == 0
    assert push(primary, bare, f"pg_wal/{s1}").rc == 0
    r = tool(bare, "archive-info", "--verify")
    assert r.rc == 0, r.stderr
    assert "pgvault.json" in bare.keys()

    # Twice is fine: exit 0, nothing changed.
    before = snapshot(bare)
    r = bare.init("--json")
    summary = json.loads(r.stdout)
    assert summary["changed"] is False and summary["marker_created"] is False, summary
    assert summary["created"] == marker["created"] and summary["repository"] == location(bare)
    r = bare.init()
    assert "already initialised" in r.stdout and "nothing changed" in r.stdout, r.stdout
    assert snapshot(bare) == before


def test_repo_init_checks_the_configured_key(workspace, repo, primary):
    key = repo.write_key()
    enc = Repo(workspace, repo.backend, s3=repo.s3, name="enc",
               settings={"encryption": {"method": "aes-256-gcm", "key_file": str(key)}})
    assert enc.keys() == ["pgvault.key.json", "pgvault.repo.json"]
    assert push(primary, enc, f"pg_wal/{primary.segments[0]}").rc == 0
    before = snapshot(enc)
    r = enc.init()
    assert "the configured key matches pgvault.key.json" in r.stdout and "nothing changed" in r.stdout, r.stdout

    # Another key against the existing repository: refused (5), nothing written.
    other = enc.write_key("ff" * 32, name="otherkey")
    enc.update({"encryption": {"key_file": str(other)}})
    r = enc.init(check=False)
    assert r.rc == 5, (r.rc, r.stderr)
    line = one_line(r.stderr)
    assert "otherkey" in line and "pgvault.key.json" in line, line
    assert snapshot(enc) == before

    # A repository created without encryption gets its key record when repo-init runs with a key.
    r = repo.update({"encryption": {"method": "aes-256-gcm", "key_file": str(key)}}).init()
    assert "key check pgvault.key.json created" in r.stdout, r.stdout
    assert "pgvault.key.json" in repo.keys()


def test_repositories_of_older_pgvault_count_as_initialised(primary, repo):
    assert push(primary, repo, f"pg_wal/{primary.segments[0]}").rc == 0
    repo.delete("pgvault.repo.json")  # what an older pgvault left: pgvault.json, no marker
    assert push(primary, repo, f"pg_wal/{primary.segments[1]}").rc == 0
    assert tool(repo, "archive-info", "--verify").rc == 0
    r = repo.init()
    assert "created by an older pgvault" in r.stdout, r.stdout
    assert "pgvault.repo.json" in repo.keys()


def test_repository_modes_do_not_depend_on_the_tool_or_its_umask(primary, workspace):
    """Files 0640 and directories 0750 (docs/FORMAT.md), whether repo-init ran from a shell (umask 022)
    or wal-push from PostgreSQL's archiver (umask 077)."""
    repo = Repo(workspace, "fs", init=False)
    run(["sh", "-c", 'umask 022; exec "$@"', "sh", *repo.cmd("repo-init")], user=PG_USER, cwd=repo.dir, check=True)
    s0 = primary.segments[0]
    r = primary.run(["sh", "-c", 'umask 077; exec "$@"', "sh", *repo.cmd("wal-push", f"pg_wal/{s0}")])
    assert r.rc == 0, r.stderr
    modes = {}
    for root, dirs, files in os.walk(repo.path):
        for name in dirs + files:
            p = os.path.join(root, name)
            modes[os.path.relpath(p, repo.path)] = stat.S_IMODE(os.stat(p).st_mode)
    assert set(modes) >= {"pgvault.repo.json", "pgvault.json", "wal", f"wal/{s0[:16]}/{s0}"}, modes
    wrong = {k: oct(m) for k, m in modes.items() if m != (0o750 if os.path.isdir(repo.path / k) else 0o640)}
    assert wrong == {}, wrong
    assert stat.S_IMODE(os.stat(repo.path).st_mode) == 0o750


def test_repo_init_creates_every_configured_repository_or_the_one_named(workspace, s3_server):
    first = Repo(workspace, "fs", name="first", init=False)
    second = Repo(workspace, "s3", s3=s3_server, name="second", init=False)
    first.update({"repositories.cloud": second.settings["repository"]})
    only = run(first.cmd("repo-init", "--repo", "cloud"), user=PG_USER, cwd=first.dir)
    assert f"initialised repository {location(second)}" in only.stdout
    assert nothing_there(first) and not nothing_there(second)
    both = json.loads(run(first.cmd("repo-init", "--json"), user=PG_USER, cwd=first.dir).stdout)
    assert [(r["repository"], r["marker_created"]) for r in both] == [(location(first), True),
                                                                       (location(second), False)]
    bad = run(first.cmd("repo-init", "--repo", "nope"), user=PG_USER, cwd=first.dir, check=False)
    assert bad.rc == 2 and 'no repository named "nope" (configured: primary, cloud)' in one_line(bad.stderr)
