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
