"""Section ``scale`` of the benchmark (bench.py --only scale, parts picked with --scale-parts): how pgvault
behaves on a large database, on a cluster with very many files, and on a big WAL archive (issue 16).

  db       pgbench databases of --scale-small (50) and --scale-big (500, ~7.5 GB): base-push and pitr-prepare
           to / from a local repository and S3; seconds, MB/s (database size / seconds), peak RSS. The
           target: base-push MB/s at the big scale within 15% of the small scale's, same run. With
           --scale-pgbackrest, pgbackrest backup / restore (process-max 2, repo-bundle=y) beside them.
  tables   one cluster with --scale-tables (20,000) small tables (a primary key and one row each): base-push
           and pitr-prepare, fs and S3, seconds and peak RSS (target: under 256 MiB).
  archive  repositories holding --scale-segments (2,000 and 20,000) WAL segments and three small backups:
           archive-info (text, --json, --verify), pitr-prepare --dry-run of the oldest backup to the end
           of the archive (the plan and WAL check a restore makes before it writes anything), and
           retention-prune --dry-run --full-backups 1 (its plan): seconds on fs and S3 and the curve
           from the small to the big archive (target: under 5 s on fs and 15 s on S3 at 20,000).

The archive's segments are real: a PostgreSQL 15 cluster initdb'd with --wal-segsize=1 (1 MiB segments)
switches WAL in a loop (pg_logical_emit_message + pg_switch_wal), and wal-push archives every segment
(scale_archive.py); each segment holds a few records and the switch, the rest is zeros (compressed, each object
is small: what is measured is the per-object cost of listing, reading and planning). The repositories are
generated once into /var/tmp/pgvault-bench-cache (--scale-cache) and reused; for S3 the cached objects
are uploaded under a fresh prefix of the run's Swift server (same keys and bytes as the fs repository:
the layout is the same on both backends, docs/FORMAT.md section 2).

Every data directory, backup and restore is removed as soon as it is measured (peak disk: the big
database + its restore + one compressed backup, ~17 GB at scale 500).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers import PG_USER, PgCluster, chown_to, make_dir, remove_tree, run

import scale_archive

SECTION = "scale"
RSS_LIMIT_KIB = 256 * 1024


def add_arguments(p) -> None:
    p.add_argument("--scale-parts", default="db,tables,archive",
                   help="parts of the scale section, comma-separated: db, tables, archive (all)")
    p.add_argument("--scale-big", type=int, default=500, help="pgbench scale of the large database (500)")
    p.add_argument("--scale-small", type=int, default=50, help="pgbench scale it is compared with (50)")
    p.add_argument("--scale-tables", type=int, default=20000, help="small tables of the many-files cluster (20000)")
    p.add_argument("--scale-segments", default="200,2000,20000",
                   help="WAL segments of the archive repositories, comma-separated (200,2000,20000)")
    p.add_argument("--scale-s3-segments", type=int, default=20000,
                   help="the biggest archive also measured on S3 (20000: uploading its 40,000 objects to the\n"
                        "test Swift, untimed, takes ~2.5 min here); bigger ones are projected")
    p.add_argument("--scale-reps", type=int, default=3,
                   help="repetitions of each archive command (3; archive-info --verify runs once)")
    p.add_argument("--scale-pgbackrest", action="store_true",
                   help="pgbackrest backup/restore (process-max 2, repo-bundle=y) beside base-push in part db")
    p.add_argument("--scale-cache", default="/var/tmp/pgvault-bench-cache",
                   help="where the generated archive repositories are kept between runs")


def apply_quick(args) -> None:
    args.scale_big = min(args.scale_big, 5)
    args.scale_small = min(args.scale_small, 2)
    args.scale_tables = min(args.scale_tables, 500)
    args.scale_segments = "100,400"
    args.scale_s3_segments = min(args.scale_s3_segments, 400)
    args.scale_reps = min(args.scale_reps, 1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dir_stats(path: Path) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                size += os.lstat(os.path.join(root, n)).st_size
                files += 1
            except OSError:
                pass
    return files, size


class ScaleSection:
    def __init__(self, bench, timed):
        """``bench``: bench.Bench (workspace, configs, results, S3); ``timed``: bench.Timed.call."""
        self.b, self.res, self.a, self.timed_call = bench, bench.res, bench.args, timed
        self.verdicts: list[str] = []
        self.mbps: dict[tuple[str, int], list[float]] = {}   # (storage, scale) -> base-push MB/s
        self.rss: dict[str, int] = {}                        # "tool, database" -> peak KiB
        self.curve: dict[tuple[str, str], dict[int, list]] = {}   # (command, storage) -> {segments: [s]}
        self.requests: dict[str, dict[int, int]] = {}             # command -> {segments: S3 requests}

    def run(self) -> None:
        if not {"base-push", "pitr-prepare"} <= set(self.b.tools):
            raise RuntimeError("base-push and pitr-prepare must be built")
        parts = [x.strip() for x in self.a.scale_parts.split(",") if x.strip()]
        unknown = set(parts) - {"db", "tables", "archive"}
        if unknown:
            raise RuntimeError(f"--scale-parts: unknown part(s) {sorted(unknown)}")
        self.res.info["scale_loadavg_start"] = os.getloadavg()
        self.wait_bucket()
        for part in parts:
            self.res.info[f"scale_{part}_seconds"] = self.run_part(part)
        self.res.info["scale_loadavg_end"] = os.getloadavg()
        self.write_summary()

    def run_part(self, part: str) -> float:
        """One part; its failure is a note, and the other parts still run. Returns its seconds."""
        t0 = time.monotonic()
        try:
            getattr(self, f"part_{part}")()
        except Exception as e:  # noqa: BLE001 - KeyboardInterrupt/SystemExit are not Exceptions
            self.res.note(f"scale part {part} failed: {type(e).__name__}: {str(e)[:1500]}")
        return round(time.monotonic() - t0, 1)

    def wait_bucket(self, timeout: float = 120) -> None:
        """A fresh Swift under load may answer NoSuchBucket for a while after the bucket was created."""
        if not self.b.s3:
            return
        client, deadline = self.b.s3.client(), time.monotonic() + timeout
        while True:
            try:
                client.put_object(Bucket=self.b.s3_bucket, Key="scale-probe", Body=b"")
                client.get_object(Bucket=self.b.s3_bucket, Key="scale-probe")["Body"].read()
                client.delete_object(Bucket=self.b.s3_bucket, Key="scale-probe")
                return
            except Exception:  # noqa: BLE001 - retried until the deadline
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def timed(self, argv: list, env=None, timeout: float = 7200) -> tuple[float, int]:
        dt, kib, _, _ = self.timed_call(argv, self.b.ws.root, env=env, timeout=timeout)
        return dt, kib

    def note_rss(self, what: str, kib: int) -> None:
        self.rss[what] = max(self.rss.get(what, 0), kib)
        self.res.note_rss(what.split(",")[0], kib)

    # ================================================================================ part: db
    def part_db(self) -> None:
        for scale in sorted({self.a.scale_small, self.a.scale_big}):
            pg = self.load_cluster(f"pgbench scale {scale}", lambda c: self.pgbench_load(c, scale))
            try:
                self.backup_and_restore(pg, f"pgbench {scale}", reps=3 if scale <= 100 else 1,
                                        key=scale, pgbackrest=self.a.scale_pgbackrest)
            finally:
                self.b.drop_cluster(pg)
        for storage in self.b.storages():
            small, big = (self.mbps.get((storage, s)) for s in (self.a.scale_small, self.a.scale_big))
            if small and big and self.a.scale_small != self.a.scale_big:
                ratio = statistics.median(big) / statistics.median(small)
                ok = ratio >= 0.85
                self.verdict(f"base-push MB/s at scale {self.a.scale_big} within 15% of scale {self.a.scale_small} "
                             f"({storage})", ok, f"{statistics.median(big):.1f} vs {statistics.median(small):.1f} "
                             f"MB/s = {ratio:.2f}x")

    def pgbench_load(self, pg: PgCluster, scale: int) -> None:
        # wal_level = minimal while loading: the COPY of tables created in the same transaction writes no
        # WAL, so the load neither fills the archive nor takes 7 GB of WAL at scale 500.
        pg.pgbench_init(scale=scale, extra_args=["-q"], timeout=7200)
        pg.psql("CHECKPOINT", timeout=1800)

    def load_cluster(self, what: str, load) -> PgCluster:
        """A fresh cluster loaded with wal_level = minimal, then restarted with archiving on."""
        pg = self.b.new_cluster(self.b.uniq("scale-pg"), wal_level="minimal", max_wal_senders=0,
                                archive_mode="off", max_wal_size="4GB", checkpoint_timeout="30min",
                                max_locks_per_transaction=256)
        pg.start()
        t0 = time.monotonic()
        log(f"scale: loading {what}")
        try:
            load(pg)
        except BaseException:
            self.b.drop_cluster(pg)
            raise
        log(f"scale: {what} loaded in {time.monotonic() - t0:.0f}s")
        pg.stop("fast")
        pg.configure(wal_level="replica", max_wal_senders=5, archive_mode="on", archive_command="/bin/false")
        return pg

    def pv_conf(self, storage: str, pg: PgCluster) -> Path:
        conf = self.b.pv_config(storage, False, self.b.uniq(f"scale{storage}"))
        conf.write_text(conf.read_text() + f'\n[backup]\nconninfo = "{pg.conninfo}"\nparallel = 2\n')
        return conf

    def backup_and_restore(self, pg: PgCluster, db: str, reps: int, key, pgbackrest: bool = False) -> None:
        """base-push then pitr-prepare of ``pg`` for every storage (and pgBackRest), interleaved; each
        backup and restore is deleted once measured."""
        confs = {s: self.pv_conf(s, pg) for s in self.b.storages()}
        pbconfs = {}
        if pgbackrest:
            pbconfs = {s: self.b.pb_config(s, False, self.b.uniq(f"scalepb{s}"), pg.datadir, pg)
                       for s in self.b.storages()}
            for c in pbconfs.values():
                c.write_text(c.read_text().replace("[global]\n", "[global]\nrepo1-bundle=y\n", 1))
        cmds = [f"{self.b.tools['wal-push']} --config {c} %p" for c in confs.values()]
        cmds += [f"pgbackrest --config={c} --stanza=bench archive-push %p" for c in pbconfs.values()]
        pg.configure(archive_command=" && ".join(cmds))
        pg.start()
        for c in pbconfs.values():
            self.b.stanza_create(c, pg)
        size = int(pg.scalar("SELECT sum(pg_database_size(oid)) FROM pg_database"))
        files, on_disk = dir_stats(pg.datadir)
        self.res.note(f"scale {db}: {size / 1e6:.0f} MB in databases, {files} files in the data directory "
                      f"({on_disk / 1e6:.0f} MB)")
        tools = [("pgvault", s) for s in confs] + [("pgbackrest", s) for s in pbconfs]
        for storage in confs:
            for op in ("base-push", "pitr-prepare"):
                others = [f"pgbackrest {'backup' if op == 'base-push' else 'restore'} {storage}"] if pbconfs else []
                self.res.pair(SECTION, f"{db} {op} {storage}", f"{op} {storage}", others)
        try:
            for rep in range(reps):
                order = tools if rep % 2 == 0 else list(reversed(tools))
                for tool, storage in order:
                    if tool == "pgvault":
                        self.pgvault_cycle(pg, db, key, storage, confs[storage], size)
                    else:
                        self.pgbackrest_cycle(pg, db, storage, pbconfs[storage], size)
        finally:
            pg.stop("fast")
            for c in confs.values():
                self.drop_repository(c)
            for s, c in pbconfs.items():
                self.drop_pgbackrest(s, c)

    def pgvault_cycle(self, pg: PgCluster, db: str, key, storage: str, conf: Path, size: int) -> None:
        subprocess.run(["sync"], check=False)
        dt, kib = self.timed([self.b.tools["base-push"], "--config", conf], env=pg.pg_env())
        self.res.add(SECTION, f"{db} base-push {storage}", f"base-push {storage}", dt, "s",
                     MBps=size / 1e6 / dt, rss_MiB=kib / 1024)
        self.mbps.setdefault((storage, key), []).append(size / 1e6 / dt)
        self.note_rss(f"base-push, {db} {storage}", kib)
        log(f"scale {db}: base-push {storage} {dt:.1f}s ({size / 1e6 / dt:.0f} MB/s, {kib / 1024:.0f} MiB)")
        dest = make_dir(self.b.ws.path(self.b.uniq("scale-restore")), mode=0o700)
        try:
            subprocess.run(["sync"], check=False)
            dt, kib = self.timed([self.b.tools["pitr-prepare"], "--config", conf, "--pgdata", dest, "--force"])
        finally:
            remove_tree(dest)
        self.res.add(SECTION, f"{db} pitr-prepare {storage}", f"pitr-prepare {storage}", dt, "s",
                     MBps=size / 1e6 / dt, rss_MiB=kib / 1024)
        self.note_rss(f"pitr-prepare, {db} {storage}", kib)
        log(f"scale {db}: pitr-prepare {storage} {dt:.1f}s ({size / 1e6 / dt:.0f} MB/s, {kib / 1024:.0f} MiB)")
        self.drop_backups(conf)

    def pgbackrest_cycle(self, pg: PgCluster, db: str, storage: str, conf: Path, size: int) -> None:
        subprocess.run(["sync"], check=False)
        dt, _ = self.timed(self.b.pb(conf, "backup", "--type=full", "--process-max=2"), env=pg.pg_env())
        self.res.add(SECTION, f"{db} base-push {storage}", f"pgbackrest backup {storage}", dt, "s",
                     MBps=size / 1e6 / dt)
        log(f"scale {db}: pgbackrest backup {storage} {dt:.1f}s")
        dest = make_dir(self.b.ws.path(self.b.uniq("scale-restore")), mode=0o700)
        try:
            subprocess.run(["sync"], check=False)
            dt, _ = self.timed(self.b.pb(conf, "restore", f"--pg1-path={dest}", "--process-max=2"))
        finally:
            remove_tree(dest)
        self.res.add(SECTION, f"{db} pitr-prepare {storage}", f"pgbackrest restore {storage}", dt, "s",
                     MBps=size / 1e6 / dt)
        log(f"scale {db}: pgbackrest restore {storage} {dt:.1f}s")
        run(self.b.pb(conf, "expire", "--repo1-retention-full=1"), user=PG_USER, cwd=self.b.ws.root,
            check=False, timeout=600)

    # -- repositories: delete what was measured ----------------------------------------------------
    def repo_location(self, conf: Path) -> tuple[str, str]:
        text = conf.read_text()
        for line in text.splitlines():
            if line.startswith("path = "):
                return "fs", line.split('"')[1]
            if line.startswith("prefix = "):
                return "s3", line.split('"')[1]
        raise RuntimeError(f"{conf}: no repository location")

    def drop_backups(self, conf: Path) -> None:
        kind, where = self.repo_location(conf)
        if kind == "fs":
            remove_tree(Path(where) / "backups")
        else:
            self.s3_delete_prefix(f"{where}/backups/")

    def drop_repository(self, conf: Path) -> None:
        kind, where = self.repo_location(conf)
        if kind == "fs":
            remove_tree(Path(where))
        else:
            self.s3_delete_prefix(f"{where}/")

    def drop_pgbackrest(self, storage: str, conf: Path) -> None:
        for line in conf.read_text().splitlines():
            if line.startswith("repo1-path="):
                where = line.split("=", 1)[1]
                if storage == "fs":
                    remove_tree(Path(where))
                else:
                    self.s3_delete_prefix(where.strip("/") + "/")

    def s3_delete_prefix(self, prefix: str) -> None:
        client = self.b.s3.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.b.s3_bucket, Prefix=prefix)
        for page in pages:
            self.b.s3.delete_keys(self.b.s3_bucket, [o["Key"] for o in page.get("Contents", [])])

    # ============================================================================ part: tables
    def part_tables(self) -> None:
        n = self.a.scale_tables
        pg = self.load_cluster(f"{n} tables", lambda c: self.create_tables(c, n))
        try:
            self.backup_and_restore(pg, f"{n} tables", reps=1, key=f"tables{n}")
        finally:
            self.b.drop_cluster(pg)

    @staticmethod
    def create_tables(pg: PgCluster, n: int, batch: int = 500) -> None:
        """``n`` tables t<i> (id int primary key, v text) with one row each, ``batch`` per transaction."""
        for lo in range(1, n + 1, batch):
            hi = min(n, lo + batch - 1)
            pg.psql(f"DO $$ BEGIN FOR i IN {lo}..{hi} LOOP "
                    "EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i); "
                    "EXECUTE format('INSERT INTO t%s VALUES (1, ''row'')', i); END LOOP; END $$", timeout=1800)
        pg.psql("CHECKPOINT", timeout=1800)

    # =========================================================================== part: archive
    def part_archive(self) -> None:
        sizes = sorted(int(x) for x in self.a.scale_segments.split(",") if x.strip())
        cached = scale_archive.ensure_cache(self.b, Path(self.a.scale_cache), sizes)
        self.res.note(f"scale archive: {scale_archive.describe(cached)}")
        repos = {}   # (segments, storage) -> conf
        try:
            for n in sizes:
                for storage in self.b.storages():
                    if storage == "fs" or n <= self.a.scale_s3_segments:
                        repos[(n, storage)] = scale_archive.install(self.b, cached[n], storage)
            for rep in range(self.a.scale_reps):
                for key in (list(repos) if rep % 2 == 0 else list(reversed(list(repos)))):
                    self.archive_commands(key[0], key[1], repos[key], cached[key[0]], verify=rep == 0)
            if "s3" in self.b.storages():
                for key in repos:
                    if key[1] == "s3":
                        self.count_requests(key[0], repos[key], cached[key[0]])
        finally:
            for (n, storage), conf in repos.items():
                if storage == "fs":   # S3: small objects, gone with the Swift server (deleting them is slow)
                    self.drop_repository(conf)
        self.archive_verdicts(sizes)

    def archive_argv(self, conf: Path, meta: dict) -> dict[str, list]:
        b = self.b
        info, prune = b.ws.tool("archive-info"), b.ws.tool("retention-prune")
        dest = b.ws.path(b.uniq("scale-dry"))
        return {
            "archive-info": [info, "--config", conf],
            "archive-info --json": [info, "--config", conf, "--json"],
            "archive-info --verify": [info, "--config", conf, "--verify"],
            "pitr-prepare --dry-run (WAL check)": [b.tools["pitr-prepare"], "--config", conf, "--pgdata", dest,
                                                   "--backup", meta["backups"][0], "--dry-run"],
            "retention-prune --dry-run": [prune, "--config", conf, "--dry-run", "--full-backups", "1"],
        }

    def archive_commands(self, n: int, storage: str, conf: Path, meta: dict, verify: bool) -> None:
        for what, argv in self.archive_argv(conf, meta).items():
            if what.endswith("--verify") and not verify:
                continue
            dt, kib = self.timed(argv, timeout=3600)
            self.res.add(SECTION, f"archive {what} {storage}", f"{n} segments", dt, "s", rss_MiB=kib / 1024)
            self.curve.setdefault((what, storage), {}).setdefault(n, []).append(dt)
            self.res.note_rss(what.split(" ")[0], kib)
            log(f"scale archive {n} {storage}: {what} {dt:.2f}s ({kib / 1024:.0f} MiB)")

    def count_requests(self, n: int, conf: Path, meta: dict) -> None:
        """HTTP requests each command sends to S3 (one sendto() per request on the TLS socket: requests
        without a body), counted once under strace, untimed."""
        if not shutil.which("strace"):
            return
        for what, argv in self.archive_argv(conf, meta).items():
            if what.endswith("--verify"):
                continue
            trace = self.b.ws.path(self.b.uniq("strace"))
            subprocess.run(["strace", "-f", "-e", "trace=sendto", "-o", str(trace), *map(str, argv)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.b.ws.root, timeout=1800)
            sent = sum(1 for line in trace.read_text().splitlines() if "sendto(" in line and "MSG_NOSIGNAL" in line)
            trace.unlink()
            self.requests.setdefault(what, {})[n] = sent
            log(f"scale archive {n} s3: {what}: {sent} requests")

    def archive_verdicts(self, sizes: list[int]) -> None:
        """The curve of every command (medians per size, the exponent between neighbouring sizes: 1 is
        linear) and the targets at the biggest size; on S3 beyond --scale-s3-segments the time is a
        linear projection of the marginal cost between the two biggest measured sizes (said so)."""
        limit = {"fs": 5.0, "s3": 15.0}
        top = sizes[-1]
        for (what, storage), by_n in self.curve.items():
            med = {n: statistics.median(v) for n, v in sorted(by_n.items())}
            self.res.info[f"scale_curve {what} {storage}"] = {str(k): round(v, 3) for k, v in med.items()}
            ns = list(med)
            steps = [f"{ns[0]}: {med[ns[0]]:.2f} s"]
            for a, b in zip(ns, ns[1:]):
                exp = math.log(med[b] / med[a]) / math.log(b / a) if med[a] > 0 and med[b] > 0 else float("nan")
                steps.append(f"{b}: {med[b]:.2f} s (x{med[b] / med[a]:.1f} for x{b / a:.0f} segments, exponent {exp:.2f})")
            curve = "; ".join(steps)
            req = self.requests.get(what) if storage == "s3" else None
            if req:
                curve += "; S3 requests " + ", ".join(f"{n}: {r}" for n, r in sorted(req.items()))
            if what.endswith("--verify"):
                self.verdicts.append(f"no target (reads every object): {what} ({storage}): {curve}")
                continue
            if top in med:
                self.verdict(f"{what} on {top} segments under {limit[storage]:.0f} s ({storage})",
                             med[top] < limit[storage], curve)
            elif len(ns) >= 2:
                a, b = ns[-2], ns[-1]
                proj = med[b] + (med[b] - med[a]) / (b - a) * (top - b)
                self.verdict(f"{what} on {top} segments under {limit[storage]:.0f} s ({storage}, PROJECTED, not "
                             f"measured)", proj < limit[storage],
                             f"{proj:.1f} s by the marginal cost from {a} to {b} segments; {curve}")

    # ============================================================================== summary
    def verdict(self, what: str, ok: bool, detail: str) -> None:
        line = f"{'MET' if ok else 'MISSED'}: {what}: {detail}"
        self.verdicts.append(line)
        self.res.note(f"scale target {line}")

    def write_summary(self) -> None:
        for what, kib in sorted(self.rss.items()):
            self.verdict(f"peak RSS of {what} under 256 MiB", kib < RSS_LIMIT_KIB, f"{kib / 1024:.1f} MiB")
        out = Path(self.a.out) / "scale.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = [r for r in self.res.table() if r["section"] == SECTION]
        lines = ["| case | tool | median s | min | max | n | MB/s | peak RSS MiB | pgvault/this |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            e = r["extra"]
            mb = f"{e['MBps']:.1f}" if "MBps" in e else ""
            rss = f"{e['rss_MiB']:.1f}" if "rss_MiB" in e else ""
            lines.append(f"| {r['case']} | {r['tool']} | {r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} | "
                         f"{r['n']} | {mb} | {rss} | "
                         f"{'' if r['pgvault_over_this'] is None else format(r['pgvault_over_this'], '.2f') + 'x'} |")
        la0, la1 = self.res.info.get("scale_loadavg_start"), self.res.info.get("scale_loadavg_end")
        head = [f"# scale section — {self.res.info.get('date')}", "",
                f"pgvault {self.res.info.get('git')}, {self.res.info.get('postgres')}; load average "
                f"{la0[0]:.1f} at start, {la1[0]:.1f} at end; 2 cores shared." if la0 and la1 else "", ""]
        text = "\n".join(head + lines + ["", "Targets:", ""] + [f"- {v}" for v in self.verdicts]
                         + ["", "Notes:", ""] + [f"- {n}" for n in self.res.notes
                            if n.startswith("scale") and not n.startswith("scale target")]) + "\n"
        out.write_text(text)
        log(f"scale summary: {out}\n{text}")
