"""The archive repositories of the scale section (tests/bench/scale.py, part ``archive``): generated once,
cached under --scale-cache, installed per run into a fresh fs directory or S3 prefix.

Generation: a PostgreSQL cluster initdb'd with --wal-segsize=1 (real 1 MiB segments), archive_command =
a copy into a staging pg_wal, from where wal-push pushes every file into a local repository (one process
per segment with cwd = the staging directory and the file given as pg_wal/<name>, as archive_command runs
it; 4 at once, since the archiver's one call at a time made generation take 40 minutes); base-push takes a backup at the start, one at
half the smallest size and one at half the biggest; segments come from a loop of
pg_logical_emit_message() + pg_switch_wal(), in batches that wait for the archiver (pg_wal never holds
more than a batch). When the repository holds a requested number of segments it is copied into the
cache with a meta.json (labels, counts); the next size continues on the same cluster, so the small
repository is exactly the first part of the big one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers import PG_USER, chown_to, make_dir, remove_tree, run

FORMAT = "v1-walsegsize1"
SEGMENT_NAME = re.compile(r"[0-9A-F]{24}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cache_root(cache: Path) -> Path:
    return cache / f"archive-{FORMAT}"


def cached(cache: Path, n: int) -> dict | None:
    meta = cache_root(cache) / str(n) / "meta.json"
    if not meta.is_file():
        return None
    m = json.loads(meta.read_text())
    m["repo"] = str(meta.parent / "repo")
    return m


def describe(metas: dict) -> str:
    parts = []
    for n, m in sorted(metas.items()):
        parts.append(f"{m['segments']} segments ({m['objects']} objects, {m['bytes'] / 1e6:.1f} MB stored, "
                     f"{len(m['backups'])} backups)")
    any_meta = next(iter(metas.values()))
    return (f"repositories of {'; '.join(parts)}; the segments are real {any_meta['segment_size'] // 1048576} MiB "
            f"PostgreSQL segments (initdb --wal-segsize=1; pg_logical_emit_message + pg_switch_wal in a loop, "
            f"archive_command copies each into a staging pg_wal that wal-push processes push, one process per "
            f"segment as archive_command runs it, 4 at once; each segment holds a few records and the switch, the "
            f"rest zeros), generated once into {any_meta['cache']} (the biggest in {max(m['generation_seconds'] for m in metas.values()):.0f} s) and reused; for S3 the "
            f"cached objects are uploaded under a fresh prefix (untimed)")


def ensure_cache(bench, cache: Path, sizes: list[int]) -> dict[int, dict]:
    missing = [n for n in sizes if not cached(cache, n)]
    if missing:
        generate(bench, cache, missing)
    return {n: cached(cache, n) for n in sizes}


def repo_segments(repo: Path) -> int:
    wal = repo / "wal"
    if not wal.is_dir():
        return 0
    return sum(1 for d in wal.iterdir() if d.is_dir() for f in os.listdir(d) if SEGMENT_NAME.fullmatch(f))


def generate(bench, cache: Path, sizes: list[int]) -> None:
    t0 = time.monotonic()
    root = cache_root(cache)
    root.mkdir(parents=True, exist_ok=True)
    pg = bench.ws.cluster(bench.uniq("scale-walgen"))
    pg.initdb(checksums=False, extra_args=["--wal-segsize=1"])
    pg.configure(dict(wal_level="replica", max_wal_senders=5, fsync=True, synchronous_commit="off",
                      shared_buffers="128MB", archive_mode="on", max_wal_size="64MB", min_wal_size="8MB",
                      checkpoint_timeout="30min"))
    conf = bench.pv_config("fs", False, bench.uniq("scalegen"), push_parallel=1)
    conf.write_text(conf.read_text() + f'\n[backup]\nconninfo = "{pg.conninfo}"\nparallel = 2\n')
    repo = Path(re.search(r'path = "([^"]+)"', conf.read_text()).group(1))
    pusher = Pusher(bench, conf, bench.ws.mkdir(bench.uniq("scale-staging"), mode=0o700))
    pg.configure(archive_command=f"cp %p {pusher.wal}/%f.tmp && mv {pusher.wal}/%f.tmp {pusher.wal}/%f")
    backups_at = sorted({0, sizes[0] // 2, sizes[-1] // 2})
    labels: list[str] = []
    try:
        pg.start()
        shutil.copytree(pg.datadir / "global", pusher.dir / "global", ignore=lambda d, n: [x for x in n if x != "pg_control"])
        chown_to(pusher.dir, recursive=True)
        pusher.start()
        for n in sizes:
            while True:
                have = repo_segments(repo)
                if backups_at and have >= backups_at[0]:
                    backups_at.pop(0)
                    labels.append(base_push(bench, conf, pg, repo))
                    continue
                if have >= n:
                    break
                goal = min([n] + backups_at)
                switch(pg, min(500, goal - have), pusher)
                log(f"scale archive: {repo_segments(repo)} segments archived ({time.monotonic() - t0:.0f} s)")
            snapshot(root / str(n), repo, labels, pg, time.monotonic() - t0, cache)
    finally:
        pusher.stop()
        bench.drop_cluster(pg)
        remove_tree(repo)
        remove_tree(pusher.dir)


class Pusher:
    """Pushes what PostgreSQL's archive_command copied into ``<dir>/pg_wal`` with wal-push, one process
    per segment exactly as archive_command would run it (cwd = ``dir``, the file given as pg_wal/<name>),
    several at once: the archiver's one call at a time is what made generation slow, not wal-push."""

    def __init__(self, bench, conf: Path, directory: Path, workers: int = 4):
        self.bench, self.conf, self.dir, self.workers = bench, conf, directory, workers
        self.wal = make_dir(directory / "pg_wal", mode=0o700)
        self.busy: set[str] = set()
        self.error: Exception | None = None
        self.stopping = False
        self.threads: list = []

    def start(self) -> None:
        import threading
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(self.workers)]
        for t in self.threads:
            t.start()

    def take(self) -> str | None:
        with self.lock:
            for f in sorted(os.listdir(self.wal)):
                if not f.endswith(".tmp") and f not in self.busy:
                    self.busy.add(f)
                    return f
        return None

    def loop(self) -> None:
        while not self.stopping:
            f = self.take()
            if f is None:
                time.sleep(0.05)
                continue
            try:
                run([self.bench.tools["wal-push"], "--config", str(self.conf), f"pg_wal/{f}"], user=PG_USER,
                    cwd=self.dir, check=True, timeout=600)
                os.unlink(self.wal / f)
            except Exception as e:  # noqa: BLE001 - reported by idle()
                self.error = e
                self.stopping = True
            with self.lock:
                self.busy.discard(f)

    def idle(self) -> bool:
        if self.error:
            raise RuntimeError(f"wal-push of a staged segment failed: {self.error}")
        return not [f for f in os.listdir(self.wal) if not f.endswith(".tmp")]

    def stop(self) -> None:
        self.stopping = True
        for t in self.threads:
            t.join(30)


def base_push(bench, conf: Path, pg, repo: Path) -> str:
    before = set(os.listdir(repo / "backups")) if (repo / "backups").is_dir() else set()
    run([bench.tools["base-push"], "--config", str(conf)], user=PG_USER, env=pg.pg_env(), cwd=bench.ws.root,
        check=True, timeout=600)
    new = sorted(set(os.listdir(repo / "backups")) - before)
    if len(new) != 1:
        raise RuntimeError(f"base-push made {new}, expected one new backup")
    return new[0]


def switch(pg, k: int, pusher: Pusher) -> None:
    """k segment switches (each after one small WAL record), then wait until they are all in the repository."""
    last = pg.scalar("SELECT pg_walfile_name(max(lsn) - 1) FROM (SELECT pg_logical_emit_message(false, 'bench', "
                     f"'x'), pg_switch_wal() AS lsn FROM generate_series(1, {k})) s", timeout=600)
    deadline = time.monotonic() + 1800
    while not (pg.is_archived(last) and pusher.idle()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"segment {last} not archived in 30 min: {pg.archiver_stats()}")
        time.sleep(0.2)
    pg.psql("CHECKPOINT", timeout=600)


def snapshot(dest: Path, repo: Path, labels: list[str], pg, seconds: float, cache: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    remove_tree(tmp)
    remove_tree(dest)
    tmp.mkdir(parents=True)
    shutil.copytree(repo, tmp / "repo", symlinks=True,
                    ignore=lambda d, names: [n for n in names if n.startswith(".pgvault-tmp.")])
    objects = size = 0
    for r, _, names in os.walk(tmp / "repo"):
        for f in names:
            objects += 1
            size += os.lstat(os.path.join(r, f)).st_size
    meta = {"segments": repo_segments(repo), "objects": objects, "bytes": size, "backups": list(labels),
            "segment_size": int(pg.scalar("SHOW wal_segment_size").rstrip("MB")) * 1048576,
            "generation_seconds": seconds, "cache": str(cache)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    tmp.rename(dest)
    log(f"scale archive: cached {dest} ({meta['segments']} segments, {objects} objects)")


def install(bench, meta: dict, storage: str) -> Path:
    """A config for a fresh repository (fs directory or S3 prefix) holding a copy of the cached objects."""
    name = bench.uniq(f"scalearch{storage}")
    conf = bench.pv_config(storage, False, name)
    src = Path(meta["repo"])
    if storage == "fs":
        dest = Path(re.search(r'path = "([^"]+)"', conf.read_text()).group(1))
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        chown_to(dest, recursive=True)
        return conf
    t0 = time.monotonic()
    files = [Path(r) / f for r, _, names in os.walk(src) for f in names]
    client = bench.s3.client()

    def put(path: Path) -> None:
        with open(path, "rb") as f:
            client.put_object(Bucket=bench.s3_bucket, Key=f"{name}/{path.relative_to(src)}", Body=f.read())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, files))
    log(f"scale archive: {len(files)} objects uploaded to s3://{bench.s3_bucket}/{name}/ in "
        f"{time.monotonic() - t0:.0f} s")
    return conf
