"""pg_basebackup --incremental and pg_combinebackup for the incremental section (incremental.py) on
PostgreSQL 17+: where their programs come from (client_programs) and the tool the section drives
(PgBasebackup: backup_argv, labels, stored, describe, restore_argv, like incremental.Pgvault)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

from helpers import PgCluster, make_dir, remove_tree


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


#: Debian release whose postgresql-client-<major> provides pg_basebackup and pg_combinebackup (Debian 12
#: has 15's only, and the pinned server packages of scripts/fetch-pg.sh hold no client programs).
CLIENT_SUITE = {17: "trixie"}
CLIENT_PACKAGES = ["postgresql-client-{major}", "libpq5", "libc6", "libldap2"]
CLIENT_CACHE = Path("/var/cache/pgvault/pg-client")


def client_programs(major: int) -> tuple[Optional[list], str]:
    """(argv prefix whose last element is the bin directory, how it was found) or (None, why not).
    $PGVAULT_BENCH_PG_CLIENT names an unpacked tree (usr/lib/postgresql/<major>/bin, usr/lib/...); else
    Debian's packages of CLIENT_SUITE are downloaded once (apt-get download, lists of their own, the
    machine's apt configuration untouched) and unpacked into CLIENT_CACHE/<major>. Their glibc is newer
    than the machine's, so the programs run through the unpacked dynamic loader with its libraries first
    (the others come from the machine)."""
    root = Path(os.environ.get("PGVAULT_BENCH_PG_CLIENT") or CLIENT_CACHE / str(major))
    bindir = root / f"usr/lib/postgresql/{major}/bin"
    if not (bindir / "pg_combinebackup").is_file() and "PGVAULT_BENCH_PG_CLIENT" not in os.environ:
        if major not in CLIENT_SUITE:
            return None, f"no Debian release with postgresql-client-{major} is configured (CLIENT_SUITE)"
        try:
            unpack_client(major, root)
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"apt-get download of postgresql-client-{major} failed: {e}"
    libdir = root / "usr/lib/x86_64-linux-gnu"
    prefix = [str(libdir / "ld-linux-x86-64.so.2"), "--library-path", str(libdir), str(bindir)]
    probe = subprocess.run(prefix[:-1] + [str(bindir / "pg_combinebackup"), "--version"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        return None, f"{bindir}/pg_combinebackup does not run: {probe.stderr.strip()[:300]}"
    return prefix, probe.stdout.strip()


def unpack_client(major: int, root: Path) -> None:
    work = root.with_name(root.name + ".download")
    remove_tree(work)
    lists = make_dir(work / "lists" / "partial", user="root", mode=0o755).parent
    (work / "sources.list").write_text(f"deb http://deb.debian.org/debian {CLIENT_SUITE[major]} main\n")
    opts = [f"-oDir::Etc::SourceList={work / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={lists}", "-oAPT::Sandbox::User=root", "-q"]
    subprocess.run(["apt-get", *opts, "update"], check=True, capture_output=True, timeout=600)
    debs = make_dir(work / "debs", user="root", mode=0o755)
    subprocess.run(["apt-get", *opts, "download", *[n.format(major=major) for n in CLIENT_PACKAGES]],
                   cwd=debs, check=True, capture_output=True, timeout=600)
    tmp = root.with_name(root.name + ".tmp")
    remove_tree(tmp)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True, capture_output=True, timeout=600)
    remove_tree(root)
    os.chmod(tmp, 0o755)
    tmp.rename(root)
    remove_tree(work)


class PgBasebackup:
    """pg_basebackup -Ft --compress=client-zstd:3 (incrementals: --incremental=<the parent's
    backup_manifest>, the parent being the newest backup taken); restore: each backup of the chain
    unpacked into a staging directory, then pg_combinebackup into the destination (its default copy
    mode and fsync); the full: tar -x + fsync of every file."""
    name = "pg_basebackup --incremental"

    def __init__(self, bench, pg: PgCluster, client: list):
        self.bench, self.pg, self.client = bench, pg, client   # client: argv prefix, program name last
        self.root = make_dir(bench.ws.path(bench.uniq("incpbb")), mode=0o700)
        self.parent: dict[str, str] = {}

    def archive_command(self) -> str:
        return ""

    def program(self, name: str) -> list:
        return [*self.client[:-1], str(Path(self.client[-1]) / name)]

    def backup_argv(self, kind: str) -> list:
        taken = sorted(self.labels())
        label = f"{len(taken):03d}-{kind}"
        out = make_dir(self.root / label, mode=0o700)
        argv = self.program("pg_basebackup") + ["-D", out, "-Ft", "-X", "none", "-c", "fast",
                                                 "--compress=client-zstd:3", "-h", self.pg.sockdir,
                                                 "-p", self.pg.port, "-U", "postgres"]
        if kind != "full":
            self.parent[label] = taken[-1]
            argv.append(f"--incremental={self.root / taken[-1] / 'backup_manifest'}")
        return argv

    def labels(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if (p / "backup_manifest").is_file()}

    def stored(self, label: str) -> int:
        return dir_bytes(self.root / label)

    def describe(self, label: str) -> dict:
        return {"type": "full" if label.endswith("full") else "incremental", "incremental_mode": "server"}

    def members(self, label: str) -> list[str]:
        out = [label]
        while out[0] in self.parent:
            out.insert(0, self.parent[out[0]])
        return out

    def restore_argv(self, label: str, dest: Path) -> list:
        members = self.members(label)
        if len(members) == 1:
            return ["sh", "-c", f"tar --zstd -xf {self.root / label / 'base.tar.zst'} -C {dest} && "
                                f"find {dest} -type f -print0 | xargs -0 sync"]
        stages = [make_dir(self.staging(dest) / m, mode=0o700) for m in members]
        unpack = " && ".join(f"tar --zstd -xf {self.root / m / 'base.tar.zst'} -C {s} && "
                             f"cp {self.root / m / 'backup_manifest'} {s}/" for m, s in zip(members, stages))
        combine = " ".join(map(str, self.program("pg_combinebackup") + [*stages, "-o", dest]))
        return ["sh", "-c", f"{unpack} && {combine}"]

    @staticmethod
    def staging(dest: Path) -> Path:
        return dest.with_name(dest.name + "-staging")

    def cleanup(self, dest: Path) -> None:
        remove_tree(self.staging(dest))
