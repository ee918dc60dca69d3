"""Encrypted objects are bound to their names and carry no fingerprint (docs/FORMAT.md 1.3, 1.5).

Issue 10, hole 5 for encrypted repositories: a valid object of segment N+1 stored under segment N's name
must not be served as segment N. And re-pushing a segment to an encrypted repository still tells
identical from different content from the trailer alone, although the trailer no longer holds the
plaintext SHA-256. Encrypted backups (bundles, manifests) still restore and verify.
"""

from __future__ import annotations

import hashlib

from conftest import fetch, push
from helpers.pitr import archive_info, base_push, recover, start_primary
from helpers.proc import chown_to
from helpers.repo import wal_key

ABORT = 200  # wal-fetch's "abort recovery" code (> 125)


def encrypt(repo):
    repo.update({"encryption": {"method": "aes-256-gcm", "key_file": str(repo.write_key())}})


def test_encrypted_object_under_another_segments_name_is_refused(primary, repo, recovery_dir):
    encrypt(repo)
    n, n1 = primary.segments[0], primary.segments[1]
    for s in (n, n1):
        assert push(primary, repo, f"pg_wal/{s}").rc == 0
    repo.write(wal_key(n), repo.read(wal_key(n1)))  # segment N's object replaced by N+1's

    r = fetch(primary, repo, n, "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == ABORT, (r.rc, r.stderr)  # never 0 (served) nor 1 (end of WAL)
    assert f"{wal_key(n)}: authentication failed on chunk 0" in r.stderr, r.stderr
    assert not (recovery_dir / "pg_wal/RECOVERYXLOG").exists()
    assert fetch(primary, repo, n1, "pg_wal/RECOVERYXLOG", recovery_dir).rc == 0  # the original still reads

    res = archive_info(repo, "--verify")
    assert res.rc == 1, res.stdout + res.stderr
    assert f"PROBLEM corruption {wal_key(n)}" in res.stdout, res.stdout


def test_encrypted_repush_identical_succeeds_different_is_refused(primary, repo, workspace):
    encrypt(repo)
    s0 = primary.segments[0]
    assert push(primary, repo, f"pg_wal/{s0}").rc == 0
    stored = repo.read(wal_key(s0))
    content = (primary.datadir / "pg_wal" / s0).read_bytes()
    assert hashlib.sha256(content).digest() not in stored  # no fingerprint in the bucket

    r = push(primary, repo, f"pg_wal/{s0}")
    assert r.rc == 0, r.stderr
    assert "already archived with identical content" in r.stderr, r.stderr

    other = workspace.mkdir("other")
    diverged = bytearray(content)  # its header still right (wal-push refuses a misplaced one earlier)
    diverged[100000:100016] = bytes(b ^ 0xFF for b in diverged[100000:100016])
    (other / s0).write_bytes(bytes(diverged))
    chown_to(other, recursive=True)
    r = push(primary, repo, other / s0)
    assert r.rc == 3, r.stderr
    assert "already archived with different content (stored: hmac-sha256 " in r.stderr, r.stderr
    assert repo.read(wal_key(s0)) == stored


def test_encrypted_backup_restores_and_verifies(workspace, repo):
    # Bundles and manifests are bound to their keys too: base-push writes them under the names that
    # pitr-prepare and archive-info --verify read them from.
    encrypt(repo)
    pg = start_primary(workspace, repo)
    pg.psql("CREATE TABLE t AS SELECT g AS x FROM generate_series(1, 5000) g")
    base_push(pg, repo)
    pg.psql("INSERT INTO t SELECT generate_series(5001, 6000)")
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    res = archive_info(repo, "--verify")
    assert res.rc == 0 and "0 problems" in res.stdout, res.stdout + res.stderr
    restored, _ = recover(workspace, repo, "restored")
    assert restored.scalar("SELECT count(*) FROM t") == "6000"
    restored.stop()
