"""Section ``incremental`` of the benchmark (bench.py --only incremental): what a weekly full plus daily
incrementals costs, in time and in repository bytes, and how fast such a chain restores.

On one pgbench database of --incr-scale (PostgreSQL --incr-pg: 17 and 18 run with summarize_wal = on, so
pgvault takes server-side incrementals; 15 and 16 get client-side block incrementals), each cycle takes

    full backup -> change 2% of the rows, CHECKPOINT -> incremental 1 -> another 2% -> incremental 2
    -> a full backup of the same data as incremental 2 (what the chain's restore is compared with)

with base-push (--type full / --type incremental --no-fallback, the type checked in archive-info) and
pgBackRest (--type=full / --type=incr, repo-bundle and repo-block on; skipped with a note on a server it
does not know), the tools interleaved, archive_command pushing every segment to both. The changed 2% is
a contiguous range of aids ('range': few pages) or one row in 50 ('spread': nearly every page), or both
kinds one after the other. Stored bytes: every object in the backup's own directory of the repository
(manifests included). Then each tool restores the chain full + 2 incrementals and the full of the same
data, interleaved (pitr-prepare --backup, pgbackrest restore --set), and pitr-prepare's restore of the
chain is started once, untimed, and must hold the primary's data (row count, sum(abalance)). The
issue's targets are printed next to the measured ratios (notes of the results).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import helpers.pg as hpg
from helpers import PG_USER, PgCluster, make_dir, remove_tree, run

import incremental_report as report
from incremental_pgbb import CLIENT_SUITE, PgBasebackup, client_programs, dir_bytes

SECTION = "incremental"


def add_arguments(p) -> None:
    p.add_argument("--incr-scale", type=int, default=100, help="pgbench scale of the incremental section (100)")
    p.add_argument("--incr-pg", type=int, default=17, choices=[15, 16, 17, 18],
                   help="PostgreSQL of the incremental section (17: summarize_wal = on, server-side\n"
                        "incrementals; 15/16: client-side; 16+ from scripts/fetch-pg.sh, cached)")
    p.add_argument("--incr-reps", type=int, default=3, help="full + 2 incrementals cycles (3)")
    p.add_argument("--incr-change", choices=["range", "spread", "both"], default="both",
                   help="which 2%% of pgbench_accounts changes: 'range' (a contiguous 2%% of the aids: few\n"
                        "pages), 'spread' (aid %% 50 = k: one row in 50 everywhere, so nearly every page),\n"
                        "or both, one after the other on the same database (default)")


def apply_quick(args) -> None:
    args.incr_scale = min(args.incr_scale, 2)
    args.incr_reps = min(args.incr_reps, 1)


@contextlib.contextmanager
def server_version(major: int) -> Iterator[Path]:
    """Run the section's clusters on PostgreSQL ``major`` (the helpers pick the server programs from
    helpers.pg.PG_BINDIR / PG_VERSION at call time); the other sections keep theirs."""
    saved = hpg.PG_VERSION, hpg.PG_BINDIR
    hpg.PG_VERSION, hpg.PG_BINDIR = major, hpg._server_bindir(major)
    try:
        yield hpg.PG_BINDIR
    finally:
        hpg.PG_VERSION, hpg.PG_BINDIR = saved


def change_sql(kind: str, step: int, rows: int) -> str:
    """~2% of pgbench_accounts, a different 2% at every step."""
    if kind == "spread":
        return f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 50 = {step % 50}"
    n = rows // 50
    lo = (step * n) % rows
    return f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > {lo} AND aid <= {lo + n}"


# ------------------------------------------------------------------------------------------ the tools

class Pgvault:
    name = "base-push"

    def __init__(self, bench, pg: PgCluster):
        self.bench = bench
        conf = bench.pv_config("fs", False, bench.uniq("incpv"))
        conf.write_text(conf.read_text() + f'\n[backup]\nconninfo = "{pg.conninfo}"\nparallel = 2\n')
        self.conf = conf
        self.archive_info = bench.ws.tool("archive-info")
        self.repo = Path(re.search(r'path = "([^"]+)"', conf.read_text()).group(1))

    def archive_command(self) -> str:
        return f"{self.bench.tools['wal-push']} --config {self.conf} %p"

    def backup_argv(self, kind: str) -> list:
        if kind == "full":
            return [self.bench.tools["base-push"], "--config", self.conf, "--type", "full"]
        return [self.bench.tools["base-push"], "--config", self.conf, "--type", "incremental", "--no-fallback"]

    def labels(self) -> set[str]:
        d = self.repo / "backups"
        return {p.name for p in d.iterdir() if (p / "manifest.json").is_file()} if d.is_dir() else set()

    def stored(self, label: str) -> int:
        return dir_bytes(self.repo / "backups" / label)

    def describe(self, label: str) -> dict:
        """archive-info's view of the backup: type, parent, incremental mode."""
        out = run([self.archive_info, "--config", str(self.conf), "--json"], user=PG_USER,
                  cwd=self.bench.ws.root, check=True, timeout=300).stdout
        return next(b for b in json.loads(out)["backups"] if b["label"] == label)

    def restore_argv(self, label: str, dest: Path) -> list:
        return [self.bench.tools["pitr-prepare"], "--config", self.conf, "--pgdata", dest, "--backup", label,
                "--force"]


class Pgbackrest:
    name = "pgbackrest (bundle, block)"

    def __init__(self, bench, pg: PgCluster):
        self.bench = bench
        name = bench.uniq("incpb")
        conf = bench.pb_config("fs", False, name, pg.datadir, pg)
        # repo-block is beta in 2.45 (beta=y); it needs repo-bundle, and is best on for the full too.
        conf.write_text(conf.read_text().replace("[global]\n", "[global]\nrepo1-bundle=y\nrepo1-block=y\nbeta=y\n", 1))
        self.conf = conf
        self.repo = bench.ws.path("repos", name, "backup", "bench")

    def archive_command(self) -> str:
        return f"pgbackrest --config={self.conf} --stanza=bench archive-push %p"

    def backup_argv(self, kind: str) -> list:
        return self.bench.pb(self.conf, "backup", f"--type={'full' if kind == 'full' else 'incr'}")

    def labels(self) -> set[str]:
        if not self.repo.is_dir():
            return set()
        pat = re.compile(r"\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?")
        return {p.name for p in self.repo.iterdir() if p.is_dir() and pat.fullmatch(p.name)}

    def stored(self, label: str) -> int:
        return dir_bytes(self.repo / label)

    def describe(self, label: str) -> dict:
        return {"type": "incremental" if label[-1] in "DI" else "full", "incremental_mode": "block"}

    def restore_argv(self, label: str, dest: Path) -> list:
        return self.bench.pb(self.conf, "restore", f"--pg1-path={dest}", f"--set={label}")


# ---------------------------------------------------------------------------------------- the section

class IncrementalSection:
    def __init__(self, bench, timed):
        """``bench``: bench.Bench (workspace, configs, results); ``timed``: bench.Timed.call."""
        self.b, self.res, self.a, self.timed_call = bench, bench.res, bench.args, timed
        self.pgv = self.a.incr_pg
        self.kind = ""
        self.prefix = ""
        self.tools: list = []
        self.verdict_lines: list[str] = []
        self.chain: dict[str, dict[str, str]] = {}    # tool -> {"full", "incr1", "incr2", "full2"} labels
        self.full_time: dict[str, float] = {}
        self.full_bytes: dict[str, int] = {}
        self.ratios: dict[str, list[float]] = {}     # verdict key -> samples

    def run(self) -> None:
        if not {"base-push", "pitr-prepare"} <= set(self.b.tools):
            raise RuntimeError("base-push and pitr-prepare must be built")
        with server_version(self.pgv) as bindir:
            version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                                     text=True).stdout.strip()
            self.res.info["incremental_postgres"] = version
            pg = self.start_primary()
            try:
                self.load(pg)
                for kind in (["range", "spread"] if self.a.incr_change == "both" else [self.a.incr_change]):
                    self.run_kind(pg, kind)
            finally:
                self.b.drop_cluster(pg)
        out = Path(self.a.out) / f"incremental-pg{self.pgv}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.summary(self.res, SECTION, f"pg{self.pgv} ") + "\n\n"
                       + "".join(f"- {line}\n" for line in self.verdict_lines))
        log(f"incremental summary: {out}\n" + out.read_text())

    def run_kind(self, pg: PgCluster, kind: str) -> None:
        """The cycles, the restores, the check and the verdicts of one kind of change."""
        self.kind, self.prefix, self.step = kind, f"pg{self.pgv} {kind}", 0
        self.chain, self.full_time, self.full_bytes, self.ratios = {}, {}, {}, {}
        self.res.note(f"incremental {self.prefix}: each change: {change_sql(kind, 0, self.rows)} "
                      f"(2% of {self.rows} rows, a different 2% each time), then CHECKPOINT")
        if not pg.is_running():
            pg.start()
        for rep in range(self.a.incr_reps):
            self.cycle(pg, rep)
        expected = self.fingerprint(pg)
        pg.stop("fast")
        self.restores()
        self.check_restore(expected)
        for line in report.verdicts(self.prefix, self.pgv, [t.name for t in self.tools], self.ratios):
            self.res.note(line)
            self.verdict_lines.append(line)

    def timed(self, argv: list, env: Optional[dict]) -> tuple:
        return self.timed_call(argv, self.b.ws.root, env=env, timeout=7200)

    # -- set-up -----------------------------------------------------------------------------------
    def start_primary(self) -> PgCluster:
        settings = dict(archive_mode="on", archive_command="/bin/false", max_wal_size="1GB",
                        checkpoint_timeout="15min")
        if self.pgv >= 17:
            settings["summarize_wal"] = "on"
        pg = self.b.new_cluster(self.b.uniq("incr-primary"), **settings)
        self.tools = [Pgvault(self.b, pg)]
        pg.configure(archive_command=self.tools[0].archive_command())
        pg.start()
        pb = Pgbackrest(self.b, pg)
        try:
            self.b.stanza_create(pb.conf, pg)
            self.res.note(f"incremental pg{self.pgv}: {pgbackrest_version()} with repo1-bundle=y, repo1-block=y "
                          f"(block incremental is a beta feature in 2.45: beta=y), compress zst:3, process-max 2; "
                          f"base-push: zstd 3, parallel 2")
            self.tools.append(pb)
        except Exception as e:  # pgBackRest 2.45 knows PostgreSQL up to 15
            why = " ".join(str(e).split("--- stderr ---")[-1].split())
            self.res.note(f"incremental pg{self.pgv}: pgBackRest rows skipped, {pgbackrest_version()} "
                          f"stanza-create failed: {why[:400]}")
        self.add_pg_basebackup(pg)
        pg.configure(archive_command=" && ".join(t.archive_command() for t in self.tools if t.archive_command()))
        pg.reload()
        return pg

    def load(self, pg: PgCluster) -> None:
        log(f"incremental pg{self.pgv}: pgbench -i -s {self.a.incr_scale}")
        pg.pgbench_init(scale=self.a.incr_scale, extra_args=["-q"], timeout=3600)
        pg.psql("CHECKPOINT", timeout=1800)
        self.rows = int(pg.scalar("SELECT count(*) FROM pgbench_accounts", timeout=600))
        size = int(pg.scalar("SELECT sum(pg_database_size(oid)) FROM pg_database"))
        self.res.info["incremental_db_MB"] = round(size / 1e6, 1)
        self.res.note(f"incremental pg{self.pgv}: {version_of(self.res)}, pgbench scale {self.a.incr_scale} "
                      f"({size / 1e6:.0f} MB)")

    def add_pg_basebackup(self, pg: PgCluster) -> None:
        if self.pgv < 17:
            self.res.note(f"incremental pg{self.pgv}: no pg_basebackup --incremental row (PostgreSQL 17+ only)")
            return
        client, how = client_programs(self.pgv)
        if client is None:
            self.res.note(f"incremental pg{self.pgv}: no pg_basebackup --incremental row: {how}")
            return
        self.res.note(f"incremental pg{self.pgv}: pg_basebackup -Ft -X none --compress=client-zstd:3 "
                      f"[--incremental=<parent>/backup_manifest], restored by tar --zstd -x of each backup into "
                      f"staging directories + pg_combinebackup (copy, fsync) ({how}, Debian "
                      f"{CLIENT_SUITE[self.pgv]}'s client package; the server is {version_of(self.res)})")
        self.tools.append(PgBasebackup(self.b, pg, client))

    def change(self, pg: PgCluster) -> None:
        sql = change_sql(self.kind, self.step, self.rows)
        n = int(pg.scalar(f"WITH u AS ({sql} RETURNING 1) SELECT count(*) FROM u", timeout=1800))
        pg.psql("CHECKPOINT", timeout=1800)
        self.step += 1
        log(f"  changed {n} rows ({100 * n / self.rows:.1f}%)")

    # -- backups ----------------------------------------------------------------------------------
    def cycle(self, pg: PgCluster, rep: int) -> None:
        log(f"incremental {self.prefix}: cycle {rep + 1}/{self.a.incr_reps}")
        for case in ("full backup", "incr1 backup", "incr2 backup"):
            self.res.pair(SECTION, f"{self.prefix} {case}", "base-push", [t.name for t in self.tools[1:]])
        for step in ("full", "incr1", "incr2", "full2"):
            if step.startswith("incr"):
                self.change(pg)
            for tool in (self.tools if rep % 2 == 0 else list(reversed(self.tools))):
                self.backup(pg, tool, step)

    def backup(self, pg: PgCluster, tool, step: str) -> None:
        kind = "full" if step.startswith("full") else "incremental"
        before = tool.labels()
        subprocess.run(["sync"], check=False)
        dt, kib, _, _ = self.timed(tool.backup_argv(kind), pg.pg_env())
        new = sorted(tool.labels() - before)
        if len(new) != 1:
            raise RuntimeError(f"{tool.name} {step}: expected one new backup, found {new}")
        label = new[0]
        info = tool.describe(label)
        if info["type"] != kind:
            raise RuntimeError(f"{tool.name} {step}: took a {info['type']} backup, not {kind} ({label})")
        stored = tool.stored(label)
        self.chain.setdefault(tool.name, {})[step] = label
        log(f"  {tool.name} {step}: {dt:.2f}s, {stored / 1e6:.1f} MB stored ({label})")
        if step == "full2":
            return
        if step == "full":
            self.full_time[tool.name], self.full_bytes[tool.name] = dt, stored
            self.res.add(SECTION, f"{self.prefix} full backup", tool.name, dt, "s", stored_MB=stored / 1e6)
        else:
            t_ratio, b_ratio = dt / self.full_time[tool.name], stored / self.full_bytes[tool.name]
            self.res.add(SECTION, f"{self.prefix} {step} backup", tool.name, dt, "s", stored_MB=stored / 1e6,
                         time_pct_of_full=100 * t_ratio,
                         bytes_pct_of_full=100 * b_ratio, mode=info.get("incremental_mode") or "")
            self.ratios.setdefault(f"{tool.name} time", []).append(t_ratio)
            self.ratios.setdefault(f"{tool.name} bytes", []).append(b_ratio)
        if tool.name == "base-push":
            self.res.note_rss(f"base-push {kind} pg{self.pgv}", kib)

    # -- restores ---------------------------------------------------------------------------------
    def restores(self) -> None:
        """The full of incremental 2's data vs the chain full + incr1 + incr2, each tool, interleaved (the
        order of the two flips every repetition)."""
        for what in ("full", "chain"):
            names = [f"{t.name} {what}" for t in self.tools]
            self.res.pair(SECTION, f"{self.prefix} restore {what}", names[0], names[1:])
        for rep in range(max(self.a.incr_reps, 2)):
            for tool in self.tools:
                order = ("full", "chain") if rep % 2 == 0 else ("chain", "full")
                dt, cpu = {}, {}
                for what in order:
                    dt[what], cpu[what] = self.restore_one(tool, what)
                ratio, cpu_ratio = dt["chain"] / dt["full"], cpu["chain"] / max(cpu["full"], 1e-3)
                self.ratios.setdefault(f"{tool.name} restore", []).append(ratio)
                self.ratios.setdefault(f"{tool.name} restore_cpu", []).append(cpu_ratio)
                self.res.add(SECTION, f"{self.prefix} restore full", f"{tool.name} full", dt["full"], "s",
                             backup="full (same data as incr2)", cpu_s=cpu["full"])
                self.res.add(SECTION, f"{self.prefix} restore chain", f"{tool.name} chain", dt["chain"], "s",
                             backup="full + incr1 + incr2", x_of_full=ratio, cpu_s=cpu["chain"],
                             cpu_x_of_full=cpu_ratio)

    def restore_one(self, tool, what: str) -> tuple[float, float]:
        """Wall and CPU (user + system of the tool and its children) seconds of one restore."""
        label = self.chain[tool.name]["full2" if what == "full" else "incr2"]
        dest = make_dir(self.b.ws.path(self.b.uniq("incr-restore")), mode=0o700)
        cpuf = self.b.ws.path(self.b.uniq("incr-cpu"))
        cpuf.write_text("")
        os.chmod(cpuf, 0o666)
        try:
            argv = tool.restore_argv(label, dest)
            subprocess.run(["sync"], check=False)
            dt, kib, _, _ = self.timed(["/usr/bin/time", "-f", "%U %S", "-o", cpuf, *argv], None)
            cpu = sum(float(x) for x in cpuf.read_text().split()[-2:])
        finally:
            remove_tree(dest)
            cpuf.unlink(missing_ok=True)
            if hasattr(tool, "cleanup"):
                tool.cleanup(dest)
        if tool.name == "base-push":
            self.res.note_rss(f"pitr-prepare {what} pg{self.pgv}", kib)
        log(f"  restore {tool.name} {what} ({label}): {dt:.2f}s, CPU {cpu:.2f}s")
        return dt, cpu

    @staticmethod
    def fingerprint(pg: PgCluster) -> str:
        return pg.scalar("SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts", timeout=600)

    def check_restore(self, expected: str) -> None:
        """Start pitr-prepare's restore of the chain once (untimed) and compare the data."""
        r = self.b.ws.cluster(self.b.uniq("incr-check"))
        make_dir(r.datadir, mode=0o700)
        pv = self.tools[0]
        run([str(a) for a in pv.restore_argv(self.chain[pv.name]["incr2"], r.datadir)], user=PG_USER,
            cwd=self.b.ws.root, check=True, timeout=3600)
        r.configure(archive_mode="off")
        try:
            r.start(wait=False)
            r.wait_for_recovery_end(timeout=1800)
            got = self.fingerprint(r)
        finally:
            self.b.drop_cluster(r)
        if got != expected:
            raise RuntimeError(f"the chain restored by pitr-prepare holds {got}, the primary held {expected}")
        self.res.note(f"incremental {self.prefix}: the chain full + 2 incrementals restored by pitr-prepare "
                      f"started and held the primary's data (count, sum(abalance) = {got})")

def pgbackrest_version() -> str:
    return subprocess.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.strip()


def version_of(res) -> str:
    return str(res.info.get("incremental_postgres", "?"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
