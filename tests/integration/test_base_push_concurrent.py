"""Two base-push runs started at the same moment against one repository (cron overlap, an operator's
manual run), on every backend.

Each run claims its label with a create-if-absent object (backups/<label>/claim) before writing any
bundle; the run that loses the claim takes the next second's label. And base-push takes the repository
lock locks/base-push first. So both runs succeed with distinct labels (one after the other), or one fails
with exit 3 (the lock or the claim) and deletes nothing of the other's. Every run that exits 0 has a
backup that `archive-info --verify` accepts, and one of them is restored with pitr-prepare and its data
compared exactly.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from helpers.pitr import archive_info, create_marks, db_state, mark, recover, start_primary
from helpers.proc import PG_USER, user_popen_kwargs

ROUNDS = 3
LABEL_RE = re.compile(r"^\d{8}T\d{6}Z-F$")


def start_together(pg, repo, n: int = 2) -> list[subprocess.Popen]:
    """Starts `n` base-push runs at the same moment, just after a second begins, so that both pick
    their label in the same second."""
    cmd = repo.cmd("base-push", "--conninfo", pg.conninfo, "--json")
    time.sleep(1.02 - time.time() % 1)
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=pg.workdir,
                             **user_popen_kwargs(PG_USER, pg.pg_env())) for _ in range(n)]


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out.append((p.returncode, stdout.decode(), stderr.decode()))
    return out


def test_base_push_started_together_gives_restorable_backups(workspace, repo):
    repo.update({"backup": {"bundle_size": "1MiB", "parallel": 2}})
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)

    labels: list[str] = []
    for rnd in range(ROUNDS):
        mark(pg, f"round{rnd}", rnd + 1)
        results = finish(start_together(pg, repo))
        ok = []
        for rc, stdout, stderr in results:
            assert rc in (0, 3), f"round {rnd}: base-push exited {rc}: {stderr}"
            if rc == 0:
                ok.append(json.loads(stdout)["label"])
            else:
                assert "claim" in stderr or "locks/base-push" in stderr, stderr  # the lock or the claim
        assert ok, f"round {rnd}: no run succeeded: {results}"
        assert len(set(ok)) == len(ok), f"round {rnd}: two runs reported the same label {ok}"
        assert all(LABEL_RE.match(label) for label in ok), ok
        labels += ok
        # Every successful run's backup is complete: its manifest and bundles are all there.
        for label in ok:
            assert f"backups/{label}/manifest.json" in repo.keys(f"backups/{label}/")

    assert len(set(labels)) == len(labels)
    res = archive_info(repo, "--verify", "--json")
    assert res.rc == 0, f"archive-info --verify ({res.rc}): {res.stdout[-2000:]} {res.stderr}"
    listed = {b["label"] for b in json.loads(res.stdout)["backups"]}
    assert set(labels) <= listed, (labels, listed)

    # Restore the backup of the last round's second run (the one that lost the same-second claim) and
    # recover to the end of the archive: exactly the primary's data.
    mark(pg, "end", 7)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    expected = db_state(pg)
    restored, summary = recover(workspace, repo, "restored", "--backup", sorted(labels)[-1])
    assert summary["backup"] == sorted(labels)[-1]
    assert db_state(restored) == expected


def test_next_base_push_removes_temporaries_of_a_killed_one(workspace, repo):
    """A base-push killed with SIGKILL leaves half-written bundle files (.pgvault-tmp.*) in its label's
    directory; the next base-push removes them (their writer provably no longer runs), not the rest."""
    if repo.backend != "fs":
        pytest.skip("temporary files exist only on the fs backend (S3 uploads are never visible)")
    # Slow on purpose (one worker, zstd -19, small bundles) so the kill lands mid-upload.
    repo.update({"backup": {"bundle_size": "1MiB", "parallel": 1}, "compression": {"level": 19}})
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=5)
    [proc] = start_together(pg, repo, n=1)
    try:
        deadline = time.monotonic() + 120
        # A bundle's temporary file, once the claim is written (not the claim's own temporary file).
        while not (temps := [t for t in (repo.path / "backups").glob("*/.pgvault-tmp.*")
                             if (t.parent / "claim").exists()]):
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "no temporary bundle file appeared"
            time.sleep(0.02)
        proc.kill()
    finally:
        finish([proc])
    assert any(t.exists() for t in temps)
    killed_dir = temps[0].parent

    repo.update({"compression": {"level": 1}})
    # The next run starts in a later second than the killed one's label: in the same second it would
    # first try to claim that label, and the sweep one put key in 16 does (here the claim's, in the killed
    # run's directory) may remove the temporaries before the start-of-run sweep this test is about.
    time.sleep(1.05 - time.time() % 1)
    res = pg.run(repo.cmd("base-push", "--conninfo", pg.conninfo, "--json"))
    assert res.rc == 0, res.stderr
    assert list(killed_dir.glob(".pgvault-tmp.*")) == []
    assert "temporary file(s) left by killed base-push runs" in res.stderr
    assert (killed_dir / "claim").exists()  # the rest of the incomplete backup is retention's to remove


def started_run(pg, repo) -> subprocess.Popen:
    cmd = repo.cmd("base-push", "--conninfo", pg.conninfo, "--archive-timeout", "120")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=pg.workdir,
                            **user_popen_kwargs(PG_USER, pg.pg_env()))


def waiting_label(repo, proc: subprocess.Popen) -> str:
    """The label of the run once it waits for its stop segment (it stores the server's backup_manifest
    just before)."""
    deadline = time.monotonic() + 120
    while not (served := [k for k in repo.keys("backups/") if k.endswith("/backup_manifest")]):
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "base-push never reached the wait for its stop segment"
        time.sleep(0.05)
    return served[0].split("/")[1]


def test_an_object_replaced_during_the_backup_fails_its_commit(workspace, repo):
    """Another writer replaces the repository lock, the label's claim or (S3) a bundle while base-push
    waits for its stop segment (archiving held back). On S3 without conditional writes the create-if-absent
    checks of all three run only then, before the manifest; on fs the lock and the claim are read back.
    base-push must not commit: exit 3, no manifest.json, the message names the object."""
    gate = workspace.path("archive-open")
    repo.update({"push": {"parallel": 1}})  # no push worker that would archive past the closed gate
    pg = start_primary(workspace, repo, archive_command=f"test -e {gate} && {repo.archive_command}")
    pg.pgbench_init(scale=1)
    other = b'{"tool": "base-push", "host": "elsewhere", "pid": 1, "time": 0, "token": "another run"}\n'
    for target in ["lock", "claim"] + (["bundle"] if repo.backend == "s3" else []):
        gate.touch()  # everything so far archived: the run's stop segment is a new one
        pg.psql("CREATE TABLE IF NOT EXISTS rounds(t text); INSERT INTO rounds VALUES ('" + target + "')")
        pg.wait_archived(pg.switch_wal())
        gate.unlink()
        proc = started_run(pg, repo)
        try:
            label = waiting_label(repo, proc)
            key = {"lock": "locks/base-push", "claim": f"backups/{label}/claim",
                   "bundle": f"backups/{label}/bundle-000000"}[target]
            repo.write(key, other)
            gate.touch()
            pg.reload()  # wakes the archiver
        finally:
            [(rc, _, err)] = finish([proc])
        assert rc == 3, f"{target}: base-push exited {rc}: {err}"
        assert key in err and "not committing" in err, err
        assert f"backups/{label}/manifest.json" not in repo.keys("backups/")
        for k in repo.keys("backups/"):  # the next round waits for its own served manifest
            if k.endswith("/backup_manifest"):
                repo.delete(k)
        if target == "lock":
            repo.delete("locks/base-push")
