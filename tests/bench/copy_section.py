"""Section ``copy`` of the benchmark (bench.py --only copy): backup-copy of a full backup from a local
repository into S3 against a fresh base-push of the same database into S3 (issue 14: the copy runs at
least as fast as the base-push).

A pgbench database of --copy-scale is archived (archive_command = wal-push into an S3 repository and a
local one at once) and backed up once into the local repository (untimed). Then, interleaved A,B,A,B:
(a) ``backup-copy --from local --to primary`` of that backup into an empty S3 prefix (a fresh repo-init
per repetition, untimed) and (b) ``base-push`` of the same database into S3. Seconds, MB/s of the
database size, peak RSS. S3 is the bench's Swift s3api behind its TLS front-end (bench.py). After the
first copy, the copied backup's manifest must be in the destination (archive-info --json of it).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import PG_USER, run

SECTION = "copy"
COPY = "backup-copy local -> s3"
PUSH = "base-push -> s3"


def add_arguments(p) -> None:
    p.add_argument("--copy-scale", type=int, default=50, help="pgbench scale of the copy section (50)")
    p.add_argument("--copy-reps", type=int, default=3, help="interleaved repetitions of copy and base-push (3)")


def apply_quick(args) -> None:
    args.copy_scale = min(args.copy_scale, 5)
    args.copy_reps = min(args.copy_reps, 1)


class CopySection:
    def __init__(self, bench, timed_call):
        self.b = bench
        self.call = timed_call
        self.res = bench.res

    def tool(self, name: str) -> str:
        return self.b.ws.tool(name)

    def with_backup_keys(self, conf: Path, conninfo: str) -> Path:
        with open(conf, "a") as f:
            f.write(f'\n[backup]\nconninfo = "{conninfo}"\nparallel = 2\n')
        return conf

    def copy_config(self, local: Path, conninfo: str) -> Path:
        """An empty S3 prefix as [repository] (primary), the local repository as [repositories.local]."""
        conf = self.b.pv_config("s3", False, self.b.uniq("copydst"))
        with open(conf, "a") as f:
            f.write(f'\n[repositories.local]\ntype = "fs"\npath = "{local}"\n')
        return self.with_backup_keys(conf, conninfo)

    def check_copied(self, conf: Path) -> None:
        out = run([self.tool("archive-info"), "--config", str(conf), "--repo", "primary", "--json"], user=PG_USER,
                  cwd=self.b.ws.root, check=True, timeout=300).stdout
        info = json.loads(out)
        info = info["repositories"][0] if "repositories" in info else info
        if len(info.get("backups", [])) != 1:
            raise RuntimeError(f"backup-copy: archive-info of the destination shows no backup: {out[:500]}")

    def run(self) -> None:
        b, a = self.b, self.b.args
        if not b.s3:
            self.res.note("copy skipped: no S3 server")
            return
        pg = b.new_cluster("copy-primary", archive_mode="on", archive_command="/bin/false",
                           max_wal_size="1GB", checkpoint_timeout="15min")
        name = b.uniq("copyarch")
        arch = self.with_backup_keys(b.two_repository_config(name), pg.conninfo)
        local = b.ws.path("repos", f"{name}-local")
        pg.configure(archive_command=f"{b.tools['wal-push']} --config {arch} %p")
        try:
            pg.start()
            pg.pgbench_init(scale=a.copy_scale, extra_args=["-q"], timeout=3600)
            pg.psql("CHECKPOINT")
            size = int(pg.scalar("SELECT sum(pg_database_size(oid)) FROM pg_database"))
            self.res.info["copy_db_MB"] = round(size / 1e6, 1)
            env = pg.pg_env()
            self.call([self.tool("base-push"), "--config", arch, "--repo", "local"], b.ws.root, env=env, timeout=7200)
            self.res.pair(SECTION, "full backup into s3", COPY, [PUSH])
            for rep in range(a.copy_reps):
                for t in (COPY, PUSH):
                    if t == COPY:
                        conf = self.copy_config(local, pg.conninfo)
                        argv = [self.tool("backup-copy"), "--config", conf, "--from", "local", "--to", "primary"]
                    else:
                        argv = [self.tool("base-push"), "--config", arch]
                    subprocess.run(["sync"], check=False)
                    dt, kib, _, _ = self.call(argv, b.ws.root, env=env, timeout=7200)
                    self.res.add(SECTION, "full backup into s3", t, dt, "s", MBps=round(size / 1e6 / dt, 1))
                    self.res.note_rss(t, kib)
                    if t == COPY and rep == 0:
                        self.check_copied(conf)
        finally:
            b.drop_cluster(pg)
