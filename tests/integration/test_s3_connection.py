"""wal-push with look-ahead against S3 (Swift s3api) through a server that closes every connection after
one answer (helpers/faultproxy.py forwards one request per connection): the look-ahead threads share
their connections (common/storage/s3/s3_shared.h), and each one the server closed is replaced, with
every segment stored exactly once and every call exiting 0."""

from __future__ import annotations

from conftest import fetch, push
from helpers.faultproxy import FaultProxy
from helpers.proc import chown_to
from helpers.repo import Repo, wal_key


def test_lookahead_survives_a_server_closing_every_connection(workspace, s3_server, primary, recovery_dir):
    with FaultProxy(s3_server.port) as proxy:
        repo = Repo(workspace, "s3", s3=s3_server)
        repo.update({"repository": {"endpoint": proxy.endpoint}, "push": {"parallel": 4}})
        first, *ahead = primary.segments
        status = primary.datadir / "pg_wal" / "archive_status"
        for name in ahead:
            (status / f"{name}.ready").touch()
        chown_to(status, recursive=True)
        proxy.clear()
        r = push(primary, repo, f"pg_wal/{first}")
        assert r.rc == 0, r.stderr
        puts = [path for method, path, _ in proxy.log if method == "PUT"]
        for name in primary.segments:  # the look-ahead pushed the others in the same call
            assert sum(1 for p in puts if p.endswith("/" + wal_key(name))) == 1, (name, puts)
        for name in ahead:  # served from the look-ahead records: no upload again
            r = push(primary, repo, f"pg_wal/{name}")
            assert r.rc == 0, r.stderr
        puts = [path for method, path, _ in proxy.log if method == "PUT"]
        for name in primary.segments:
            assert sum(1 for p in puts if p.endswith("/" + wal_key(name))) == 1, (name, puts)
            r = fetch(primary, repo, name, "pg_wal/RECOVERYXLOG", recovery_dir)
            assert r.rc == 0, r.stderr
            assert (recovery_dir / "pg_wal/RECOVERYXLOG").read_bytes() == (primary.datadir / "pg_wal" / name).read_bytes()
            (recovery_dir / "pg_wal/RECOVERYXLOG").unlink()
