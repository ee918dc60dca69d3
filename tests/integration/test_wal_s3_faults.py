"""wal-push and wal-fetch against S3 (Swift s3api) through the fault proxy (helpers/faultproxy.py).

wal-push either succeeds with an intact object or exits non-zero with nothing visible; wal-fetch never
writes a corrupted file to %p, and an unreachable endpoint gives up in bounded time and aborts archive
recovery (exit 200) instead of reporting "not in the archive" (exit 1) -- except on a standby.
"""

from __future__ import annotations

import time

import pytest

from conftest import fetch, push
from helpers.faultproxy import FaultProxy
from helpers.repo import Repo, wal_key
from helpers.swift import free_port

ABORT = 200


@pytest.fixture
def s3repo(workspace, s3_server):
    """An S3 repository whose tools go through a fault proxy; retries kept short."""
    with FaultProxy(s3_server.port) as proxy:
        repo = Repo(workspace, "s3", s3=s3_server)
        repo.update({"repository": {"endpoint": proxy.endpoint, "timeout": 3, "retry_time": 20},
                     "fetch": {"prefetch": 0}, "push": {"parallel": 1}})
        repo.proxy = proxy
        yield repo


def local(pg, name):
    return (pg.datadir / "pg_wal" / name).read_bytes()


def test_push_retries_server_errors_and_stores_intact(primary, s3repo, recovery_dir):
    s0 = primary.segments[0]
    s3repo.proxy.add("PUT", "status", status=503, times=2)
    s3repo.proxy.add("PUT", "cut_request", times=1)
    s3repo.proxy.add("PUT", "corrupt_request", times=1)
    s3repo.proxy.add("GET", "status", status=500, times=1)
    r = push(primary, s3repo, f"pg_wal/{s0}")
    assert r.rc == 0, r.stderr
    assert s3repo.proxy.count(action="status") >= 2
    r = fetch(primary, s3repo, s0, "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == 0, r.stderr
    assert (recovery_dir / "pg_wal/RECOVERYXLOG").read_bytes() == local(primary, s0)


def test_push_that_keeps_failing_exits_non_zero_and_stores_nothing(primary, s3repo):
    s0 = primary.segments[0]
    assert push(primary, s3repo, f"pg_wal/{s0}").rc == 0  # the identity exists; now the data PUT fails
    s1 = primary.segments[1]
    s3repo.proxy.add("PUT", "cut_request", times=1000, path=s1)
    started = time.monotonic()
    r = push(primary, s3repo, f"pg_wal/{s1}")
    assert r.rc not in (0,) and r.rc <= 125, r.stderr
    assert time.monotonic() - started < 90
    assert wal_key(s1) not in s3repo.keys()


def test_fetch_never_writes_a_corrupted_body(primary, s3repo, recovery_dir):
    s0 = primary.segments[0]
    assert push(primary, s3repo, f"pg_wal/{s0}").rc == 0
    s3repo.proxy.add("GET", "corrupt_response", times=1000, path=s0)
    r = fetch(primary, s3repo, s0, "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == ABORT, r.stderr
    assert not (recovery_dir / "pg_wal/RECOVERYXLOG").exists()
    assert s0 in r.stderr


def test_stalled_get_is_cut_and_retried(primary, s3repo, recovery_dir):
    s0 = primary.segments[0]
    assert push(primary, s3repo, f"pg_wal/{s0}").rc == 0
    s3repo.proxy.add("GET", "stall", times=1, path=s0)
    started = time.monotonic()
    r = fetch(primary, s3repo, s0, "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == 0, r.stderr
    assert time.monotonic() - started < 30
    assert (recovery_dir / "pg_wal/RECOVERYXLOG").read_bytes() == local(primary, s0)


def test_unreachable_endpoint_aborts_recovery_in_bounded_time(primary, s3repo, recovery_dir):
    assert push(primary, s3repo, f"pg_wal/{primary.segments[0]}").rc == 0
    s3repo.update({"repository": {"endpoint": f"http://127.0.0.1:{free_port()}", "retry_time": 5}})
    started = time.monotonic()
    r = fetch(primary, s3repo, "000000010000000000000077", "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == ABORT, r.stderr  # not "missing": the archive could not be asked
    assert time.monotonic() - started < 60
    (recovery_dir / "standby.signal").write_text("")
    r = fetch(primary, s3repo, "000000010000000000000077", "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == 1, r.stderr
    assert "127.0.0.1" in r.stderr


def test_wrong_secret_is_a_clear_auth_error(primary, s3repo, recovery_dir):
    s3repo.update({"repository": {"secret_access_key": "not-the-secret"}})
    r = push(primary, s3repo, f"pg_wal/{primary.segments[0]}")
    assert r.rc == 5, r.stderr
    assert "SignatureDoesNotMatch" in r.stderr or "403" in r.stderr
    r = fetch(primary, s3repo, primary.segments[0], "pg_wal/RECOVERYXLOG", recovery_dir)
    assert r.rc == ABORT, r.stderr
