"""Section ``drain`` of the benchmark (bench.py --only drain): pgvault against its peers at their best
configuration for WAL, on the same real segments (issue 16).

1. Backlog drain. One PostgreSQL 15 cluster writes --drain-segments real 16 MiB segments with archiving
   paused (archive_command = ''), so all of them wait as ``.ready`` (an archiver that fell behind); it
   is stopped cleanly and kept as the golden copy. For every tool and every repetition a clone of it
   starts (the ``.ready`` segments hard-linked, read-only for the archiver; everything else copied),
   archive_command is set to the tool and reloaded, and the clock runs until no ``.ready`` is left.
   Tools: wal-push with look-ahead ([push] parallel, spool), pgBackRest 2.45 ``archive-async=y`` with
   process-max 2 and 4 (own spool-path), pgBackRest synchronous (reference), on the local repository
   and on S3; barman-cloud-wal-archive (--snappy, its fastest compression in 3.4) on S3 only, capped at
   --drain-barman-cap segments and extrapolated linearly (PostgreSQL's archiver calls it one segment at
   a time). CPU: every process of the clone (postmaster, archiver, the tool and whatever it detaches) in
   a cgroup-v1 cpuacct group of its own, divided by the segments archived.
2. Recovery from S3 of the first --drain-recovery-segments segments of that same WAL: a cold copy of
   the cluster taken just before the WAL was written restores up to a named restore point with each
   tool's S3 archive from the drain's first repetition: wal-fetch with prefetch, pgBackRest async
   archive-get (queue --drain-get-queue-mib, process-max 4), barman-cloud-wal-restore (no prefetch in
   3.4). Seconds from start to promotion; sum(abalance) is checked against the primary's at the
   restore point.

The tools run interleaved (A, B, C, A, B, C); medians and pgvault/peer ratios of medians, with the
issue's targets in the notes. S3 is the Swift s3api of helpers/swift.py behind bench.py's TLS front-end
for every tool (barman through boto3 with --endpoint-url and AWS_CA_BUNDLE = the front-end's
certificate).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from helpers import PgCluster, chown_to, remove_tree

from drain_measure import CountingRelay, CpuGroup

SECTION = "drain"
STANZA = "bench"
PV = "wal-push (parallel={p}, spool)"
PB_ASYNC = "pgbackrest async process-max {m}"
PB_SYNC = "pgbackrest sync (reference)"
BARMAN = "barman-cloud-wal-archive {z}"
FETCH = "wal-fetch (prefetch={f})"
PB_GET = "pgbackrest async archive-get (process-max 4, queue {q} MiB)"
BARMAN_GET = "barman-cloud-wal-restore"
FLOOR = "floor: cp of the uncompressed segments (local pg_wal)"


def add_arguments(p) -> None:
    p.add_argument("--drain-segments", type=int, default=200, help="segments in the backlog (200)")
    p.add_argument("--drain-reps", type=int, default=2, help="repetitions of every drain (2)")
    p.add_argument("--drain-barman-cap", type=int, default=34,
                   help="barman-cloud-wal-archive: segments timed, then extrapolated (34; raised to\n"
                        "reach the restore point: its archive serves the recovery)")
    p.add_argument("--drain-recovery-segments", type=int, default=64,
                   help="segments replayed by the recovery from S3 (64 = 1 GiB, the issue's 1-2 GB range)")
    p.add_argument("--drain-recovery-reps", type=int, default=2, help="repetitions of every recovery (2)")
    p.add_argument("--drain-parallel", type=int, default=4, help="wal-push [push] parallel (4)")
    p.add_argument("--drain-prefetch", type=int, default=8, help="wal-fetch [fetch] prefetch (8)")
    p.add_argument("--drain-get-queue-mib", type=int, default=1024,
                   help="pgBackRest archive-get-queue-max in MiB (1024)")
    p.add_argument("--drain-barman-compression", choices=["gzip", "bzip2", "snappy", "none"], default="none",
                   help="barman-cloud-wal-archive compression (none: its fastest on a loopback S3; gzip,\n"
                        "level 9 in Python, took 10-20 s per segment here; Debian 12's python3-snappy\n"
                        "0.5.3 fails on Python 3.11: 'PY_SSIZE_T_CLEAN macro must be defined')")
    p.add_argument("--drain-parts", default="backlog,recovery,count",
                   help="comma-separated: backlog (the timed drains), recovery (timed; needs backlog: it\n"
                        "recovers from the first repetition's S3 archives), count (the counting pass);\n"
                        "default all three")
    p.add_argument("--drain-tools", default="",
                   help="comma-separated words: only the drain/recovery tools whose name holds one of them\n"
                        "(e.g. 'wal-push,process-max 4'; default: every tool)")
    p.add_argument("--drain-count-segments", type=int, default=20,
                   help="untimed pass through a counting relay: S3 requests and connections per segment\n"
                        "of each tool's drain (barman capped at this many segments) and recovery (20; 0: off)")


def apply_quick(args) -> None:
    args.drain_segments = min(args.drain_segments, 24)
    args.drain_reps = 1
    args.drain_barman_cap = min(args.drain_barman_cap, 8)
    args.drain_recovery_segments = min(args.drain_recovery_segments, 6)
    args.drain_recovery_reps = 1
    args.drain_count_segments = min(args.drain_count_segments, 4)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] drain: {msg}", file=sys.stderr, flush=True)


def seg_no(name: str) -> int:
    return int(name[8:16], 16) * 256 + int(name[16:24], 16)


# ------------------------------------------------------------------------------------- section

class DrainSection:
    def __init__(self, bench, wait_detached):
        self.b = bench
        self.a = bench.args
        self.res = bench.res
        self.ws = bench.ws
        self.wait_detached = wait_detached
        self.golden: Optional[PgCluster] = None
        self.rec_base = self.ws.path("drain-rec-base")
        self.backlog: list[str] = []
        self.rec_check = ""
        self.rec_segments = 0   # backlog segments up to the one holding the restore point
        self.kept: dict[str, tuple[str, Path]] = {}   # recovery tool -> (repository name, config)
        self.parts = {p.strip() for p in self.a.drain_parts.split(",")}
        self.ca = self.ws.root / "proxy.crt"   # the TLS front-end's certificate (barman's CA bundle)
        self.counter: Optional[CountingRelay] = None
        z = self.a.drain_barman_compression
        self.barman_flag = "" if z == "none" else f"--{z}"
        self.barman = BARMAN.format(z=self.barman_flag or "(uncompressed)")

    # -- driver -----------------------------------------------------------------------------------
    def run(self) -> None:
        a = self.a
        if "s3" not in self.b.storages():
            self.res.note("drain: no S3 server: only the local-repository drain runs")
        try:
            self.prepare()
            for rep in range(a.drain_reps if "backlog" in self.parts else 0):
                for storage in self.b.storages():
                    for tool in self.drain_tools(storage):
                        self.guarded(f"drain {tool} {storage}", self.drain_one, tool, storage, rep)
            if "recovery" in self.parts and "s3" in self.b.storages():
                for rep in range(a.drain_recovery_reps):
                    for tool in self.recovery_tools():
                        self.guarded(f"recovery {tool}", self.recover_one, tool)
            if "count" in self.parts and self.a.drain_count_segments and "s3" in self.b.storages():
                self.guarded("request counting", self.count_requests)
            self.verdicts()
        finally:
            if self.golden:
                self.b.drop_cluster(self.golden)
            remove_tree(self.rec_base)
            for name, _ in self.kept.values():
                self.drop_s3(name)

    def guarded(self, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            self.res.note(f"{what} failed: {type(e).__name__}: {str(e)[:1200]}")

    def drain_tools(self, storage: str) -> list[str]:
        tools = [PV.format(p=self.a.drain_parallel), PB_ASYNC.format(m=2), PB_ASYNC.format(m=4), PB_SYNC]
        if storage == "s3":
            tools.append(self.barman)
        return self.selected(tools)

    def recovery_tools(self) -> list[str]:
        return self.selected([FETCH.format(f=self.a.drain_prefetch), PB_GET.format(q=self.a.drain_get_queue_mib),
                              BARMAN_GET, FLOOR])

    def selected(self, tools: list[str]) -> list[str]:
        words = [w.strip() for w in self.a.drain_tools.split(",") if w.strip()]
        return [t for t in tools if not words or any(w in t for w in words)]

    # -- the WAL: golden cluster with the backlog, and the cold copy recovery starts from -----------
    def prepare(self) -> None:
        a = self.a
        n, k = a.drain_segments, a.drain_recovery_segments
        pg = self.b.new_cluster("drain-golden", archive_mode="on", archive_command="/bin/true",
                                max_wal_size="1GB", checkpoint_timeout="5min", autovacuum=False)
        self.golden = pg
        pg.start()
        pg.pgbench_init(scale=a.wal_scale, extra_args=["-q"])
        pg.psql("CHECKPOINT")
        pg.wait_archived(pg.switch_wal(), timeout=300)
        pg.stop("fast")
        self.copy_cold(pg.datadir, self.rec_base, links=False)
        pg.configure(archive_command="")
        pg.start()
        log(f"writing {n} segments with archiving paused (UPDATE + VACUUM and pgbench, scale {a.wal_scale})")
        t0 = time.monotonic()
        self.load_until(pg, k)
        self.rec_check = pg.scalar("SELECT sum(abalance) FROM pgbench_accounts")
        rp_wal = pg.scalar("SELECT pg_walfile_name(pg_create_restore_point('drain_recovery'))")
        self.load_until(pg, n)
        pg.stop("fast")
        self.trim_backlog(pg, n)
        # The load steps overshoot: the restore point may lie a few segments past k. Recovery replays
        # up to it, and barman's capped drain must archive that far (its archive serves the recovery).
        self.rec_segments = seg_no(rp_wal) - seg_no(self.backlog[0]) + 1
        if self.rec_segments > n:
            raise RuntimeError(f"the restore point is in {rp_wal}, past the {n} segments of the backlog")
        a.drain_barman_cap = max(a.drain_barman_cap, min(n, self.rec_segments + 1))
        self.res.info["drain_segments"] = n
        self.res.info["drain_wal_zstd3_ratio"] = self.zstd_ratio(pg, self.backlog[:8])
        self.res.info["drain_recovery_wal_MiB"] = self.rec_segments * 16
        log(f"backlog of {n} segments written in {time.monotonic() - t0:.0f}s "
            f"({self.backlog[0]}..{self.backlog[-1]})")

    def load_until(self, pg: PgCluster, ready: int) -> None:
        """Real WAL at little CPU (the machine is shared): UPDATEs of a quarter of pgbench_accounts at a
        time (heap and index records, full-page images after each checkpoint), each followed by a
        VACUUM (so the table stays its size), and a short pgbench run now and then."""
        step = 0
        while self.b.ready_count(pg) < ready:
            if step % 4 == 3:
                pg.pgbench(["-T", "2", "-c", "4", "-j", "2", "-M", "prepared", "-n"], timeout=600)
            else:
                pg.psql(f"UPDATE pgbench_accounts SET abalance = abalance + {step % 7 + 1} WHERE aid % 4 = {step % 4}",
                        timeout=1800)
                pg.psql("VACUUM pgbench_accounts", timeout=1800)
            step += 1

    def trim_backlog(self, pg: PgCluster, n: int) -> None:
        """Exactly the n oldest segments stay .ready; any newer one is marked .done."""
        status = pg.datadir / "pg_wal" / "archive_status"
        ready = sorted(f[:-6] for f in os.listdir(status) if f.endswith(".ready"))
        for extra in ready[n:]:
            (status / f"{extra}.ready").rename(status / f"{extra}.done")
        self.backlog = ready[:n]
        if len(self.backlog) != n or seg_no(self.backlog[-1]) - seg_no(self.backlog[0]) != n - 1:
            raise RuntimeError(f"backlog is not {n} consecutive segments: {self.backlog[:3]}...")

    def zstd_ratio(self, pg: PgCluster, names: list[str]) -> float:
        total = comp = 0
        for name in names:
            r = subprocess.run(["zstd", "-3", "-q", "-c", str(pg.datadir / "pg_wal" / name)],
                               stdout=subprocess.PIPE, check=True)
            total, comp = total + 16 * 1024 * 1024, comp + len(r.stdout)
        return round(total / comp, 2)

    @staticmethod
    def copy_cold(src: Path, dest: Path, links: bool, ready: frozenset = frozenset()) -> None:
        """The data directory ``src`` of a stopped cluster into ``dest``; segments in ``ready``
        hard-linked when ``links`` (the archiver only reads them), the rest of pg_wal copied, or left
        out (not ``links``: a cold copy whose WAL comes from the archive)."""
        shutil.copytree(src, dest, symlinks=True,
                        ignore=lambda d, names: names if d.endswith("/pg_wal") else
                        [x for x in names if x in ("postmaster.pid", "postmaster.opts")])
        wal, status = dest / "pg_wal", dest / "pg_wal" / "archive_status"
        status.mkdir(parents=True, exist_ok=True)
        if links:
            for f in os.listdir(src / "pg_wal"):
                p = src / "pg_wal" / f
                if p.is_file():
                    (os.link if f in ready else shutil.copyfile)(p, wal / f)
            for f in os.listdir(src / "pg_wal" / "archive_status"):
                shutil.copyfile(src / "pg_wal" / "archive_status" / f, status / f)
        chown_to(dest, recursive=True)
        os.chmod(dest, 0o700)

    def clone(self, name: str) -> PgCluster:
        pg = self.ws.cluster(name)
        self.copy_cold(self.golden.datadir, pg.datadir, links=True, ready=frozenset(self.backlog))
        pg.configure(checkpoint_timeout="1h", max_wal_size="8GB")   # no recycling of linked segments
        return pg

    # -- tool configurations -------------------------------------------------------------------
    def pgbackrest_conf(self, storage: str, name: str, pg: PgCluster, variant: str, **settings) -> Path:
        """bench.pb_config's pgbackrest.conf (repository ``name``) with ``settings`` replacing or
        joining its [global] lines, saved as conf/<name>-<variant>.conf; own lock and spool paths."""
        base = self.b.pb_config(storage, False, name, pg.datadir, pg)
        own = self.ws.mkdir("drain-pgbr", f"{name}-{variant}", mode=0o755)
        settings = {"lock-path": own / "lock", "spool-path": own / "spool", **settings}
        lines = base.read_text().splitlines()
        out = []
        for line in lines:
            key = line.split("=", 1)[0]
            if key in settings:
                line = f"{key}={settings.pop(key)}"
            out.append(line)
            if line == "[global]":
                extra_at = len(out)
        out[extra_at:extra_at] = [f"{k}={v}" for k, v in settings.items()]
        conf = base.with_name(f"{name}-{variant}.conf")
        conf.write_text("\n".join(out) + "\n")
        os.chmod(conf, 0o600)
        chown_to(conf)
        chown_to(own, recursive=True)
        return conf

    def barman_env(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.b.barman_env(self.ca).items())

    def barman_args(self, name: str) -> str:
        return " ".join(self.b.barman_args(name))

    def archive_command(self, tool: str, storage: str, name: str, pg: PgCluster) -> tuple[str, Path]:
        if tool.startswith("wal-push"):
            conf = self.b.pv_config(storage, False, name, push_parallel=self.a.drain_parallel,
                                    prefetch=self.a.drain_prefetch)
            return f"{self.b.tools['wal-push']} --config {conf} %p", conf
        if tool.startswith("barman"):
            return f"{self.barman_env()} barman-cloud-wal-archive {self.barman_flag} {self.barman_args(name)} %p", \
                self.ws.path("conf")
        if tool == PB_SYNC:
            conf = self.pgbackrest_conf(storage, name, pg, "sync", **{"archive-async": "n", "process-max": 1})
        else:
            m = int(tool.rsplit(" ", 1)[1])
            conf = self.pgbackrest_conf(storage, name, pg, "push", **{"archive-async": "y", "process-max": m})
        self.b.stanza_create(conf, pg)
        return f"pgbackrest --config={conf} --stanza={STANZA} archive-push %p", conf

    # -- 1. backlog drain ------------------------------------------------------------------------
    def drain_one(self, tool: str, storage: str, rep: int) -> None:
        n = self.a.drain_segments
        cap = min(n, self.a.drain_barman_cap) if tool.startswith("barman") else n
        if self.counter and tool.startswith("barman"):
            cap = min(cap, self.a.drain_count_segments)
        name = self.b.uniq("drn")
        case = f"backlog {n} segments {storage}"
        if not self.counter:
            self.res.pair(SECTION, case, PV.format(p=self.a.drain_parallel),
                          [t for t in self.drain_tools(storage) if not t.startswith("wal-push")])
        pg = self.clone(name)
        cpu = CpuGroup(name)
        keep = False
        try:
            pg.start()
            cmd, marker = self.archive_command(tool, storage, name, pg)
            cpu.adopt_tree(pg._proc.pid)
            load = os.getloadavg()[0]
            cpu0 = cpu.seconds()
            pg.configure(archive_command=cmd)
            subprocess.run(["sync"], check=False)
            if self.counter:
                self.counter.reset()
            t0 = time.monotonic()
            pg.reload()
            done = self.wait_archived(pg, cap, t0)
            dt = time.monotonic() - t0
            cpu1 = cpu.seconds()
            pg.stop("immediate")
            self.wait_detached(str(marker), timeout=120)
            if self.counter:
                self.add_counts(f"S3 requests per segment: drain ({storage})", tool)
                return
            cpu_seg = (cpu1 - cpu0) / done if cpu0 is not None else None
            value = dt * n / done
            extra = {"load1": round(load, 1)}
            if cpu_seg is not None:
                extra["cpu_ms_per_seg"] = round(cpu_seg * 1000, 1)
            if done < n:
                extra["timed_segments"] = done
            self.res.add(SECTION, case, tool, value, "s", **extra)
            log(f"{case} {tool}: {dt:.1f}s for {done} segments -> {value:.1f}s "
                f"(cpu {cpu_seg and cpu_seg * 1000:.0f} ms/seg, load {load:.1f})")
            keep = rep == 0 and storage == "s3" and self.keep_for_recovery(tool, name, marker)
        finally:
            pg.stop("immediate")
            cpu.close()
            remove_tree(pg.workdir)
            if storage == "fs":
                remove_tree(self.ws.path("repos", name))
            elif not keep:
                self.drop_s3(name)

    def wait_archived(self, pg: PgCluster, cap: int, t0: float, timeout: float = 3600) -> int:
        """Seconds until the backlog is gone (no .ready left), or until ``cap`` of it are .done;
        returns how many segments were archived."""
        status = pg.datadir / "pg_wal" / "archive_status"
        backlog = set(self.backlog)
        while True:
            names = os.listdir(status)
            ready = sum(1 for f in names if f.endswith(".ready"))
            done = sum(1 for f in names if f.endswith(".done") and f[:-5] in backlog)
            if ready == 0 or done >= cap:
                return done
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"backlog not drained after {timeout}s: {pg.archiver_stats()}")
            time.sleep(0.05)

    def keep_for_recovery(self, tool: str, name: str, conf: Path) -> bool:
        """The first repetition's S3 archive of each tool at its best serves the recovery part."""
        if tool.startswith("wal-push"):
            self.kept[FETCH.format(f=self.a.drain_prefetch)] = (name, conf)
        elif tool == PB_ASYNC.format(m=4):
            self.kept[PB_GET.format(q=self.a.drain_get_queue_mib)] = (name, conf)
        elif tool.startswith("barman"):
            self.kept[BARMAN_GET] = (name, conf)
        else:
            return False
        return True

    def drop_s3(self, name: str) -> None:
        """Every object under ``name/`` of the bench bucket (straight to Swift, not timed)."""
        client = self.b.s3.client()
        token = None
        while True:
            kw = {"Bucket": self.b.s3_bucket, "Prefix": f"{name}/"}
            if token:
                kw["ContinuationToken"] = token
            page = client.list_objects_v2(**kw)
            self.b.s3.delete_keys(self.b.s3_bucket, [o["Key"] for o in page.get("Contents", [])])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    # -- 2. recovery from S3 -----------------------------------------------------------------------
    def restore_command(self, tool: str, r: PgCluster) -> str:
        if tool == FLOOR:   # what replay alone costs: no download, no decompression
            return f"cp {self.golden.datadir / 'pg_wal'}/%f %p"
        name, conf = self.kept[tool]
        if tool.startswith("wal-fetch"):
            return f"{self.b.tools['wal-fetch']} --config {self.through_proxy(conf)} %f %p"
        if tool.startswith("barman"):
            return f"{self.barman_env()} barman-cloud-wal-restore {self.barman_args(name)} %f %p"
        get = self.pgbackrest_conf("s3", name, r, f"get{self.b.uniq('')}",
                                   **{"archive-async": "y", "process-max": 4,
                                      "archive-get-queue-max": f"{self.a.drain_get_queue_mib}MiB"})
        return f"pgbackrest --config={get} --stanza={STANZA} archive-get %f \"%p\""

    def recover_one(self, tool: str) -> None:
        k = self.rec_segments
        case = f"recovery s3 {k} segments"
        if not self.counter:
            self.res.pair(SECTION, case, FETCH.format(f=self.a.drain_prefetch),
                          [t for t in self.recovery_tools() if not t.startswith("wal-fetch")])
        if tool not in self.kept and tool != FLOOR:
            raise RuntimeError("its drain into S3 did not run or failed: no archive to recover from")
        name = self.b.uniq("drnrec")
        r = self.ws.cluster(name)
        r.init_from_backup(self.rec_base)
        if tool.startswith("wal-fetch"):
            remove_tree(self.ws.path("spool", self.kept[tool][0], "fetch"))
        cmd = self.restore_command(tool, r)
        r.configure(archive_mode="off", restore_command=cmd, recovery_target_name="drain_recovery",
                    recovery_target_action="promote")
        r.enable_recovery()
        cpu = CpuGroup(name)
        try:
            subprocess.run(["sync"], check=False)
            load = os.getloadavg()[0]
            if self.counter:
                self.counter.reset()
            t0 = time.monotonic()
            r.start(wait=False)
            cpu.adopt_tree(r._proc.pid)
            r.wait_for_recovery_end(timeout=3600)
            dt = time.monotonic() - t0
            used = cpu.seconds()
            got = r.scalar("SELECT sum(abalance) FROM pgbench_accounts")
            if got != self.rec_check:
                raise RuntimeError(f"recovery with {tool} gave sum(abalance) {got}, expected {self.rec_check}")
            if self.counter:
                self.add_counts("S3 requests per segment: recovery", tool)
                return
            extra = {"load1": round(load, 1), "MBps": round(k * 16.78 / dt, 1)}
            if used is not None:
                extra["cpu_ms_per_seg"] = round(used * 1000 / k, 1)
            self.res.add(SECTION, case, tool, dt, "s", **extra)
            log(f"{case} {tool}: {dt:.1f}s (data checked, load {load:.1f})")
        finally:
            r.stop("fast", timeout=60)
            if tool in self.kept:
                self.wait_detached(str(self.kept[tool][1]), timeout=120)
            cpu.close()
            remove_tree(r.workdir)

    # -- diagnosis: what each tool sends to S3 per segment -------------------------------------------
    def count_requests(self) -> None:
        """One untimed pass of the S3 drain (and recovery) of pgvault, pgBackRest async process-max 4 and
        barman through a second TLS front-end whose backend is a CountingRelay."""
        relay = CountingRelay(self.b.s3.port, self.b.proxy.loop)
        workdir = self.ws.mkdir("drain-count", mode=0o755)
        proxy = type(self.b.proxy)(relay.port, workdir)
        saved = self.b.proxy, self.ca, self.a.drain_segments
        self.main_port = self.b.proxy.port
        self.b.proxy, self.ca, self.counter = proxy, workdir / "proxy.crt", relay
        self.a.drain_segments = min(self.a.drain_segments, self.a.drain_count_segments)
        kept = dict(self.kept)
        try:
            log(f"counting S3 requests ({self.a.drain_segments} segments per drain)")
            for tool in (PV.format(p=self.a.drain_parallel), PB_ASYNC.format(m=4), self.barman):
                self.guarded(f"counting {tool}", self.drain_one, tool, "s3", 1)
            if "recovery" in self.parts:
                for tool in self.recovery_tools():
                    if tool in self.kept:
                        self.guarded(f"counting {tool}", self.recover_one, tool)
        finally:
            self.kept = kept
            self.b.proxy, self.ca, self.a.drain_segments = saved[0], saved[1], saved[2]
            self.counter = None
            proxy.stop()
            relay.stop()

    def through_proxy(self, conf: Path) -> Path:
        """``conf`` itself, or in the counting pass a copy whose endpoint is the counting front-end."""
        if not self.counter:
            return conf
        text = conf.read_text().replace(f'"https://127.0.0.1:{self.main_port}"', f'"https://127.0.0.1:{self.b.proxy.port}"')
        copy = conf.with_name(f"{conf.stem}-count{conf.suffix}")
        copy.write_text(text)
        os.chmod(copy, 0o644)
        chown_to(copy)
        return copy

    def add_counts(self, case: str, tool: str) -> None:
        """Requests and new connections divided by the WAL segments named in PUT/POST/GET paths
        (the segments that moved, look-ahead and prefetch included)."""
        segments = max(1, len(self.counter.segments))
        by = self.counter.methods
        total = sum(by.values())
        self.res.add(SECTION, case, tool, round(total / segments, 2), "req/seg",
                     connections_per_seg=round(self.counter.connections / segments, 2),
                     methods=" ".join(f"{m}:{c}" for m, c in sorted(by.items())), segments=segments)
        log(f"{case} {tool}: {total} requests ({dict(by)}), {self.counter.connections} connections, "
            f"{segments} segments")

    # -- targets -----------------------------------------------------------------------------------
    def verdicts(self) -> None:
        pv, fetch = PV.format(p=self.a.drain_parallel), FETCH.format(f=self.a.drain_prefetch)
        targets = [("backlog", "fs", pv, PB_ASYNC.format(m=4), 0.5), ("backlog", "s3", pv, PB_ASYNC.format(m=4), 0.5),
                   ("backlog", "s3", pv, self.barman, 0.25),
                   ("recovery", "s3", fetch, PB_GET.format(q=self.a.drain_get_queue_mib), 0.5),
                   ("recovery", "s3", fetch, BARMAN_GET, 0.25)]
        for kind, storage, ours, peer, limit in targets:
            mine = self.median_case(kind, storage, ours)
            theirs = self.median_case(kind, storage, peer)
            if mine is None or theirs is None:
                self.res.note(f"target {kind} {storage} {ours} <= {limit}x {peer}: not measured")
                continue
            ratio = mine / theirs
            self.res.note(f"target {kind} {storage}: {ours} / {peer} = {mine:.1f}s / {theirs:.1f}s = "
                          f"{ratio:.2f}x (target <= {limit}x): {'met' if ratio <= limit else 'missed'}")

    def median_case(self, kind: str, storage: str, tool: str) -> Optional[float]:
        for (section, case, t), row in self.res.rows.items():
            if section == SECTION and case.startswith(kind) and f" {storage}" in case and t == tool:
                return statistics.median(row["samples"])
        return None
