"""Racing wal-push calls: four calls push different content under one segment name at the same moment,
20 rounds, on fs and on S3 (Swift's s3api, a store without conditional writes). In every round exactly
one call exits 0 and it is the call whose bytes the repository holds (fetched back and compared); the
others exit 3 (duplicate). Nothing is reported as archived that is not the stored copy (issue 10, hole 6).
"""

import os
import subprocess
import time
from pathlib import Path

from helpers.proc import chown_to, user_popen_kwargs
from helpers.repo import wal_key

from conftest import fetch, push

PUSHERS = 4
ROUNDS = 20
TAIL = 256 * 1024  # bytes after the header that differ between the candidates


def make_candidates(workspace, segment: Path) -> list[Path]:
    """PUSHERS copies of a real segment under its own name, each with a different random tail."""
    data = segment.read_bytes()
    out = []
    for i in range(PUSHERS):
        d = workspace.mkdir(f"pusher{i}")
        p = d / segment.name
        p.write_bytes(data[:-TAIL] + os.urandom(TAIL))
        chown_to(p)
        out.append(p)
    return out


def race(primary, repo, candidates) -> list[int]:
    """Starts every wal-push at once (as PostgreSQL's archiver would run them) and returns the exits."""
    kwargs = user_popen_kwargs(primary.user, primary.pg_env())
    procs = [subprocess.Popen([repo.tool("wal-push"), "--config", str(repo.config_path), str(c)],
                              cwd=primary.datadir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
             for c in candidates]
    rcs, errs = [], []
    for p in procs:
        _, err = p.communicate(timeout=120)
        rcs.append(p.returncode)
        errs.append(err.decode(errors="replace").strip())
    return rcs, errs


def test_exactly_the_pusher_whose_bytes_are_stored_exits_zero(workspace, repo, primary, recovery_dir):
    repo.update({"push": {"parallel": 1}, "fetch": {"prefetch": 0}})
    if (Path(os.environ["PGVAULT_BIN"]) / "repo-init").exists():
        primary.run(repo.cmd("repo-init"), check=True)
    first, name = primary.segments[0], primary.segments[1]
    assert push(primary, repo, primary.datadir / "pg_wal" / first).rc == 0  # identity written before the race
    candidates = make_candidates(workspace, primary.datadir / "pg_wal" / name)
    contents = [c.read_bytes() for c in candidates]
    dest = recovery_dir / "pg_wal" / "RECOVERYXLOG"
    bad = []
    started = time.monotonic()
    for rnd in range(ROUNDS):
        rcs, errs = race(primary, repo, candidates)
        r = fetch(primary, repo, name, dest, cwd=recovery_dir)
        assert r.rc == 0, r.stderr
        stored = dest.read_bytes()
        dest.unlink()
        owners = [i for i, c in enumerate(contents) if c == stored]
        assert len(owners) == 1, f"round {rnd}: the stored segment is none of the candidates"
        want = [0 if i == owners[0] else 3 for i in range(PUSHERS)]
        if rcs != want:
            bad.append(f"round {rnd}: exits {rcs}, stored bytes of pusher {owners[0]}: {errs}")
        repo.delete(wal_key(name))
    elapsed = time.monotonic() - started
    assert not bad, f"{len(bad)} of {ROUNDS} rounds wrong:\n" + "\n".join(bad)
    assert elapsed < 90, f"{ROUNDS} rounds took {elapsed:.0f} s"


# --- the s3 backend's pieces, through tests/tools/s3-storage-tool -------------------------------------

def s3_tool(s3_server, bucket, caps, *args):
    env = dict(os.environ, PGVAULT_S3_ENDPOINT=s3_server.endpoint, PGVAULT_S3_BUCKET=bucket,
               PGVAULT_S3_ACCESS_KEY_ID=s3_server.access_key, PGVAULT_S3_SECRET_ACCESS_KEY=s3_server.secret_key,
               PGVAULT_S3_CAPABILITY_FILE=str(caps))
    tool = os.path.join(os.environ["PGVAULT_BIN"], "s3-storage-tool")
    return subprocess.run([tool, *args], env=env, capture_output=True, timeout=120)


def test_remembered_capability_is_per_endpoint_and_never_overwrites(s3_server, tmp_path):
    bucket = f"caps-{os.getpid()}"
    s3_server.create_bucket(bucket)
    caps = tmp_path / "caps"
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(os.urandom(100_000))
    second.write_bytes(os.urandom(100_000))
    # A remembered "no" for another endpoint does not apply here: this store is probed, and remembered.
    caps.write_text(f"{int(time.time())} no http://127.0.0.1:1 {bucket}\n")
    caps.chmod(0o600)
    assert s3_tool(s3_server, bucket, caps, "put", "k", str(first), "--if-absent", "--size").returncode == 0
    lines = caps.read_text().splitlines()
    assert any(line.endswith(f" no {s3_server.endpoint} {bucket}") for line in lines), lines
    # With the answer remembered, a create-if-absent still never replaces an existing object.
    r = s3_tool(s3_server, bucket, caps, "put", "k", str(second), "--if-absent", "--size")
    assert r.returncode == 3, r.stderr
    got = tmp_path / "got"
    assert s3_tool(s3_server, bucket, caps, "get", "k", str(got)).returncode == 0
    assert got.read_bytes() == first.read_bytes()


def test_tail_is_one_suffix_range_read(s3_server, tmp_path):
    bucket = f"tail-{os.getpid()}"
    s3_server.create_bucket(bucket)
    small, empty = tmp_path / "small", tmp_path / "empty"
    small.write_bytes(b"0123456789")
    empty.write_bytes(b"")
    for key, f in (("small", small), ("empty", empty)):
        assert s3_tool(s3_server, bucket, "none", "put", key, str(f), "--size").returncode == 0
    out = {}
    for key, n in (("small", "4"), ("small", "48"), ("empty", "48"), ("missing", "48")):
        r = s3_tool(s3_server, bucket, "none", "tail", key, n)
        out[(key, n)] = (r.returncode, r.stdout.decode().strip())
    assert out[("small", "4")] == (0, "10\t" + b"6789".hex())
    assert out[("small", "48")] == (0, "10\t" + b"0123456789".hex())
    assert out[("empty", "48")] == (0, "0")
    assert out[("missing", "48")][0] == 2
