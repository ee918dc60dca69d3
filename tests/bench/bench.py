#!/usr/bin/python3
"""pgvault side by side with pgBackRest (and cp / zstd / pg_basebackup floors), in one run on one machine.

Run through tests/bench/run.sh (installs pgbackrest/hyperfine/time, builds Release), or directly:

    PGVAULT_BIN=build/release /usr/bin/python3 tests/bench/bench.py --quick

Sections (--only picks one; default all):
  wal        per-segment calls, one fresh process per file exactly as PostgreSQL makes them (cwd = a data
             directory copy, the file given as pg_wal/<name>), tools interleaved repetition by repetition:
             wal-push vs pgbackrest archive-push, wal-fetch vs pgbackrest archive-get, local and S3, with
             and without encryption, on two WAL sets (TPC-B, random hex text); floors cp+fsync, zstd -3+fsync;
             and wal-push into two repositories at once (S3 + a local directory) beside each alone
  multirepo  only that last part of wal: two repositories at once against each alone
  sustained  pgbench of fixed length with archive_command = each tool in turn: backlog at the end, drain time
  recovery   one archived WAL range replayed by a restored cluster with restore_command = each tool
  multipart  one 1 GiB object up to and down from the S3 server: pgvault's storage layer vs awscli
  backup     base-push vs pgbackrest backup vs pg_basebackup -Ft (plain, client-zstd:3); restore:
             pitr-prepare vs pgbackrest restore vs tar -x + fsync, on a pgbench database of --scale
  copy       backup-copy of a full backup local -> S3 vs a fresh base-push to S3 (tests/bench/copy_section.py;
             --copy-scale, --copy-reps)
  incremental  full + 2 incrementals (base-push vs pgbackrest incr with repo-block), time, stored bytes,
             restore of the chain vs a full (tests/bench/incremental.py; --incr-scale, --incr-pg)
  scale      a scale-500 database, 20,000 small tables, an archive of 20,000 segments (tests/bench/scale.py;
             --scale-parts db,tables,archive); not in the default run
  drain      peers at their best for WAL: a 200-segment .ready backlog drained by wal-push (look-ahead),
             pgBackRest async (process-max 2, 4) and sync, barman-cloud-wal-archive; recovery from S3 with
             wal-fetch (prefetch), pgBackRest async archive-get, barman-cloud-wal-restore (tests/bench/drain.py)

Every server runs through tests/integration/helpers (stopped by PID), everything lives in one temp
workspace that is removed at the end, also on Ctrl-C / SIGTERM. Results: tests/bench/results/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("PGVAULT_BIN", str(ROOT / "build" / "release"))

from helpers import PG_USER, PgCluster, Workspace, chown_to, make_dir, pg_bin, remove_tree, run  # noqa: E402
from helpers.proc import user_popen_kwargs  # noqa: E402
import drain  # noqa: E402
import incremental  # noqa: E402
import copy_section  # noqa: E402  (not copy.py: that name would hide the standard library's copy module)
import scale  # noqa: E402

try:
    from helpers.swift import SwiftS3  # noqa: E402
except ImportError:  # the S3 test server helper has not landed yet
    SwiftS3 = None

SEG = 16 * 1024 * 1024
STANZA = "bench"
BARMAN_BACKUP = "barman-cloud-backup (uncompressed, 2 jobs)"
BARMAN_RESTORE = "barman-cloud-restore"
PGBR_CIPHER_PASS = "bench-cipher-pass-0123456789abcdef"
KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Skip(Exception):
    """A comparison that cannot run here (with the reason, printed in the output)."""


# ------------------------------------------------------------------------------------------ results

class Results:
    def __init__(self):
        self.rows: dict[tuple[str, str, str], dict] = {}   # (section, case, tool) -> row
        self.order: list[tuple[str, str, str]] = []
        self.pairs: list[tuple[str, str, str, list[str]]] = []  # section, case, pgvault tool, others
        self.rss: dict[str, int] = {}                       # pgvault tool -> peak RSS KiB
        self.notes: list[str] = []
        self.info: dict[str, object] = {}

    def add(self, section: str, case: str, tool: str, value: float, unit: str, **extra) -> None:
        key = (section, case, tool)
        if key not in self.rows:
            self.rows[key] = {"section": section, "case": case, "tool": tool, "unit": unit, "samples": [],
                              "extra": {}}
            self.order.append(key)
        self.rows[key]["samples"].append(value)
        for k, v in extra.items():
            self.rows[key]["extra"].setdefault(k, []).append(v)

    def pair(self, section: str, case: str, pgvault_tool: str, others: list[str]) -> None:
        if (section, case, pgvault_tool, others) not in self.pairs:
            self.pairs.append((section, case, pgvault_tool, others))

    def note_rss(self, tool: str, kib: int) -> None:
        self.rss[tool] = max(self.rss.get(tool, 0), kib)

    def note(self, text: str) -> None:
        log("NOTE: " + text)
        if text not in self.notes:
            self.notes.append(text)

    @staticmethod
    def stats(row: dict) -> dict:
        s = row["samples"]
        return {"median": statistics.median(s), "min": min(s), "max": max(s), "n": len(s)}

    def table(self) -> list[dict]:
        """Rows of the summary table, pgvault first in each case, with pgvault/this ratios."""
        out, seen = [], set()
        for key in self.order:
            section, case, _ = key
            if (section, case) in seen:
                continue
            seen.add((section, case))
            keys = [k for k in self.order if k[0] == section and k[1] == case]
            pv = next((p for p in self.pairs if p[0] == section and p[1] == case), None)
            base = None
            if pv and (section, case, pv[2]) in self.rows:
                base = self.stats(self.rows[(section, case, pv[2])])["median"]
                keys.sort(key=lambda k: 0 if k[2] == pv[2] else 1)
            for k in keys:
                row = self.rows[k]
                st = self.stats(row)
                ratio = None
                if base is not None and k[2] != pv[2] and st["median"] > 0:
                    ratio = base / st["median"]
                extra = {e: (statistics.median(v) if all(isinstance(x, (int, float)) for x in v) else v[-1])
                         for e, v in row["extra"].items()}
                out.append({"section": section, "case": case, "tool": k[2], "unit": row["unit"], **st,
                            "samples": row["samples"], "pgvault_over_this": ratio, "extra": extra})
        return out


def fmt(v: float, unit: str) -> str:
    if unit == "ms/seg":
        return f"{v:.1f}"
    if unit in ("s",):
        return f"{v:.2f}"
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def render_table(res: Results, markdown: bool) -> str:
    rows = res.table()
    head = ["section", "case", "tool", "unit", "median", "min", "max", "n", "pgvault/this", "notes"]
    lines = []
    body = []
    for r in rows:
        extra = ", ".join(f"{k}={(f'{v:.1f}' if isinstance(v, float) else v)}" for k, v in r["extra"].items())
        body.append([r["section"], r["case"], r["tool"], r["unit"], fmt(r["median"], r["unit"]),
                     fmt(r["min"], r["unit"]), fmt(r["max"], r["unit"]), str(r["n"]),
                     f"{r['pgvault_over_this']:.2f}x" if r["pgvault_over_this"] is not None else "",
                     extra])
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for b in body:
            lines.append("| " + " | ".join(b) + " |")
    else:
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        widths[-1] = 0
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
        prev = None
        for b in body:
            if prev is not None and (b[0], b[1]) != prev:
                lines.append("")
            prev = (b[0], b[1])
            lines.append("  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip())
    rss = ", ".join(f"{t} {kib / 1024:.1f} MiB" for t, kib in sorted(res.rss.items()))
    lines.append("")
    lines.append(("Peak RSS of pgvault tools (max over every call): " if not markdown else
                  "**Peak RSS** of pgvault tools (max over every call): ") + (rss or "n/a"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ process timing

class Timed:
    """Run one command as postgres, timing wall clock, and collect its peak RSS (wait4)."""

    last_cpu = 0.0   # user + system seconds of the last call (wait4), less noisy than wall time

    @staticmethod
    def call(argv: list[str], cwd, env: Optional[dict] = None, user: str = PG_USER,
             check: bool = True, timeout: float = 600) -> tuple[float, int, int, str]:
        kw = user_popen_kwargs(user, env)
        # stderr into a file, not a pipe: a detached helper (look-ahead, prefetch) keeps the inherited
        # descriptor open, and PostgreSQL (system()) only waits for the command itself, not for EOF.
        errf = tempfile.TemporaryFile()
        # Peak RSS through GNU time: wait4()'s ru_maxrss of our own child would include the RSS of the
        # forked Python interpreter before exec (Linux keeps the pre-exec high-water mark).
        rssf = tempfile.NamedTemporaryFile(prefix="pgvault-bench-rss-", delete=False)
        rssf.close()
        os.chmod(rssf.name, 0o666)
        argv = ["/usr/bin/time", "-f", "%M", "-o", rssf.name, *argv]
        t0 = time.perf_counter()
        p = subprocess.Popen([str(a) for a in argv], cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True, **kw)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()
            raise
        t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        text = errf.read(65536).decode("utf-8", "replace")
        errf.close()
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} (cwd {cwd}) exited {p.returncode}:\n{text[-2000:]}")
        Timed.last_cpu = ru.ru_utime + ru.ru_stime
        try:
            with open(rssf.name) as f:
                kib = int(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            kib = 0
        os.unlink(rssf.name)
        return t1 - t0, kib, p.returncode, text


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def wait_detached(marker: str, timeout: float = 60.0) -> None:
    """Wait (never kill) until no process has ``marker`` in its command line: detached look-ahead or
    prefetch helpers of the previous pass must not steal CPU from the next tool."""
    deadline = time.monotonic() + timeout
    me = os.getpid()
    while time.monotonic() < deadline:
        busy = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        busy = True
                        break
            except OSError:
                pass
        if not busy:
            return
        time.sleep(0.05)


# ----------------------------------------------------------------------------------- TLS front-end

class TlsProxy:
    """TLS terminator in front of the plain-HTTP Swift S3 server (asyncio, own thread).

    pgBackRest 2.45 (Debian 12) speaks S3 over https only (plain http arrived in 2.58), so both tools
    go through this same front-end, keeping the comparison fair."""

    def __init__(self, backend_port: int, workdir: Path):
        self.backend_port = backend_port
        cert, key = workdir / "proxy.crt", workdir / "proxy.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.loop = asyncio.new_event_loop()
        self.port: Optional[int] = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10) or self.port is None:
            raise RuntimeError("TLS proxy did not start")

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(r, w, close_after: bool):
            try:
                while True:
                    d = await r.read(1 << 18)
                    if not d:
                        break
                    w.write(d)
                    await w.drain()
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                try:
                    if close_after:
                        w.close()
                    elif w.can_write_eof():
                        w.write_eof()
                except (OSError, RuntimeError):
                    pass

        async def handle(reader, writer):
            try:
                br, bw = await asyncio.open_connection("127.0.0.1", self.backend_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, bw, False), pipe(br, writer, True))
            bw.close()

        async def start():
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.ctx, backlog=128)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def stop(self) -> None:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)   # connections still open at exit
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


# ------------------------------------------------------------------------------------------- bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.res = Results()
        self.ws: Optional[Workspace] = None
        self.s3 = None
        self.proxy: Optional[TlsProxy] = None
        self.s3_bucket = "bench"
        self.tools: dict[str, str] = {}
        self._n = 0

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        self.ws = Workspace(prefix="pgvault-bench-")
        log(f"workspace {self.ws.root}")
        bindir = Path(os.environ["PGVAULT_BIN"])
        for name in ("wal-push", "wal-fetch", "base-push", "pitr-prepare", "repo-init"):
            if (bindir / name).is_file():
                self.tools[name] = self.ws.tool(name)
        if not {"wal-push", "wal-fetch", "repo-init"} <= set(self.tools):
            raise SystemExit(f"wal-push/wal-fetch/repo-init not built in {bindir}")
        self.key_file = self.ws.path("pgvault.key")
        self.key_file.write_text(KEY_HEX + "\n")
        os.chmod(self.key_file, 0o600)
        chown_to(self.key_file)
        for d in ("pgbr-lock", "pgbr-log", "pgbr-spool", "conf", "spool"):
            self.ws.mkdir(d, mode=0o755)
        # Every tool and server from now on writes its temporary files in the workspace: pgvault's S3
        # capability cache (${TMPDIR:-/tmp}/pgvault-<uid>, or $XDG_RUNTIME_DIR/pgvault) would otherwise
        # stay behind in /tmp, or be an operator's on a developer's machine.
        self.saved_env = {k: os.environ.get(k) for k in ("TMPDIR", "XDG_RUNTIME_DIR")}
        os.environ["TMPDIR"] = str(self.ws.mkdir("tmp", mode=0o700))
        os.environ.pop("XDG_RUNTIME_DIR", None)
        self.res.info.update(self._host_info())

    def start_s3(self) -> None:
        if self.args.no_s3:
            self.res.note("S3 skipped (--no-s3)")
            return
        if SwiftS3 is None:
            self.res.note("S3 skipped: tests/integration/helpers/swift.py is not there yet")
            return
        log("starting Swift (S3 test server)")
        try:
            self.s3 = SwiftS3().start()
            self.s3.create_bucket(self.s3_bucket)
            self.proxy = TlsProxy(self.s3.port, self.ws.root)
        except Exception as e:  # keep benchmarking the local repository
            self.res.note(f"S3 skipped: the Swift test server did not start ({str(e).splitlines()[0]})")
            self.stop_s3()
            return
        self.res.note("S3: OpenStack Swift s3api (helpers/swift.py) behind a local TLS front-end (Python "
                      "asyncio) for BOTH tools: pgBackRest 2.45 cannot talk plain http to S3 "
                      "(https only before 2.58)")

    def stop_s3(self) -> None:
        if self.proxy:
            self.proxy.stop()
            self.proxy = None
        if self.s3:
            self.s3.stop()
            self.s3 = None

    def close(self) -> None:
        try:
            self.stop_s3()
        finally:
            for key, value in getattr(self, "saved_env", {}).items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if self.ws:
                self.ws.close()

    def _host_info(self) -> dict:
        def out(cmd):
            try:
                return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
            except OSError:
                return ""
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host_cores": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
            "kernel": os.uname().release,
            "pgbackrest": out(["pgbackrest", "version"]),
            "zstd": out(["zstd", "--version"]),
            "postgres": out([pg_bin("postgres"), "--version"]),
            "git": out(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
            "pgvault_bin": os.environ["PGVAULT_BIN"],
            "pgvault_tools": sorted(self.tools),
        }

    def uniq(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    # -- configs ---------------------------------------------------------------------------------
    def pv_config(self, storage: str, enc: bool, name: str, push_parallel: int = 4, prefetch: int = 8) -> Path:
        """A pgvault.toml for a fresh repository (local dir or S3 prefix) named ``name``."""
        lines = ["[repository]"]
        if storage == "fs":
            lines += ['type = "fs"', f'path = "{self.ws.path("repos", name)}"']
        else:
            lines += ['type = "s3"', f'bucket = "{self.s3_bucket}"', f'prefix = "{name}"',
                      f'endpoint = "https://127.0.0.1:{self.proxy.port}"', f'region = "{self.s3.region}"',
                      'uri_style = "path"', f'access_key_id = "{self.s3.access_key}"',
                      f'secret_access_key = "{self.s3.secret_key}"', "verify_tls = false"]
        lines += ["", "[compression]", 'method = "zstd"', "level = 3", ""]
        if enc:
            lines += ["[encryption]", 'method = "aes-256-gcm"', f'key_file = "{self.key_file}"', ""]
        # Spools, owed queue and local state in the workspace (the defaults are under /var/tmp and
        # /var/lib/pgvault, which the run would leave behind).
        spool = self.ws.mkdir("spool", name, mode=0o700)
        lines += ["[push]", f"parallel = {push_parallel}", f'spool = "{spool}/push"', f'owed_dir = "{spool}/owed"', "",
                  "[fetch]", f"prefetch = {prefetch}", f'spool = "{spool}/fetch"', "",
                  "[check]", f'state_dir = "{spool}/state"', "",
                  "[log]", 'level = "warning"', ""]
        conf = self.ws.path("conf", f"{name}.toml")
        conf.write_text("\n".join(lines))
        os.chmod(conf, 0o644)
        chown_to(conf)
        if storage == "fs":
            make_dir(self.ws.path("repos"), mode=0o755)
        # Like stanza-create for pgBackRest: only repo-init creates a pgvault repository (not timed).
        run([self.tools["repo-init"], "--config", str(conf)], user=PG_USER, cwd=self.ws.root, check=True, timeout=120)
        return conf

    def pb_config(self, storage: str, enc: bool, name: str, pg_path: Path, pg: Optional[PgCluster]) -> Path:
        """A pgbackrest.conf with stanza ``bench`` on a fresh repository named ``name``."""
        g = ["[global]", "compress-type=zst", "compress-level=3", "archive-async=n", "process-max=2",
             f"lock-path={self.ws.path('pgbr-lock')}", f"log-path={self.ws.path('pgbr-log')}",
             f"spool-path={self.ws.path('pgbr-spool')}", "log-level-console=warn", "log-level-file=off",
             "log-level-stderr=warn", "start-fast=y", "repo1-retention-full=99", "archive-timeout=120"]
        if storage == "fs":
            g += ["repo1-type=posix", f"repo1-path={self.ws.path('repos', name)}"]
            make_dir(self.ws.path("repos"), mode=0o755)
        else:
            g += ["repo1-type=s3", f"repo1-path=/{name}", f"repo1-s3-bucket={self.s3_bucket}",
                  "repo1-s3-endpoint=127.0.0.1", f"repo1-storage-port={self.proxy.port}",
                  f"repo1-s3-key={self.s3.access_key}", f"repo1-s3-key-secret={self.s3.secret_key}",
                  f"repo1-s3-region={self.s3.region}", "repo1-s3-uri-style=path", "repo1-storage-verify-tls=n"]
        if enc:
            g += ["repo1-cipher-type=aes-256-cbc", f"repo1-cipher-pass={PGBR_CIPHER_PASS}"]
        s = [f"[{STANZA}]", f"pg1-path={pg_path}"]
        if pg is not None:
            s += [f"pg1-port={pg.port}", f"pg1-socket-path={pg.sockdir}", "pg1-user=postgres"]
        conf = self.ws.path("conf", f"{name}.conf")
        conf.write_text("\n".join(g + [""] + s) + "\n")
        os.chmod(conf, 0o600)
        chown_to(conf)
        return conf

    def barman_env(self, ca: Optional[Path] = None) -> dict[str, str]:
        """Environment of barman-cloud-* (boto3) for the test S3 behind the TLS front-end whose certificate
        is ``ca`` (default: the front-end of every tool, self.proxy)."""
        s3 = self.s3
        ca = ca or self.ws.root / "proxy.crt"
        os.chmod(ca, 0o644)   # barman runs as postgres
        return {"AWS_CA_BUNDLE": str(ca), "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": s3.region,
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

    def barman_args(self, name: str) -> list[str]:
        """barman-cloud-*'s S3 arguments: provider, endpoint, the URL of prefix ``name``, the server name."""
        return ["--cloud-provider", "aws-s3", "--endpoint-url", f"https://127.0.0.1:{self.proxy.port}",
                f"s3://{self.s3_bucket}/{name}", STANZA]

    def pb(self, conf: Path, *args: str) -> list[str]:
        return ["pgbackrest", f"--config={conf}", f"--stanza={STANZA}", *args]

    def stanza_create(self, conf: Path, pg: PgCluster) -> None:
        """stanza-create against the running server (pg1-path must be its data directory)."""
        run(self.pb(conf, f"--pg1-path={pg.datadir}", f"--pg1-port={pg.port}", f"--pg1-socket-path={pg.sockdir}",
                    "stanza-create"), user=PG_USER, cwd=self.ws.root, check=True, timeout=300)

    def storages(self) -> list[str]:
        return ["fs"] + (["s3"] if self.s3 else [])

    # -- clusters --------------------------------------------------------------------------------
    def new_cluster(self, name: str, **settings) -> PgCluster:
        pg = self.ws.cluster(name)
        pg.initdb(checksums=False)
        base = dict(wal_level="replica", max_wal_senders=5, fsync=True, synchronous_commit="off",
                    shared_buffers="128MB", log_checkpoints=False)
        base.update(settings)
        pg.configure(base)
        return pg

    def drop_cluster(self, pg: PgCluster) -> None:
        pg.stop("fast", timeout=60)
        remove_tree(pg.workdir)

    # ======================================================================== WAL segment sets
    def gen_segments(self, pg: PgCluster, kind: str, n: int) -> list[Path]:
        """n complete 16 MiB segments of ``kind`` load, copied out of pg_wal."""
        log(f"generating {n} {kind} segments")
        if kind == "hex":
            pg.psql("CREATE TABLE IF NOT EXISTS hex (t text)")
        pg.switch_wal()
        pg.psql("SELECT txid_current()")
        first = pg.current_wal_file()
        first_no = int(first[8:16], 16) * 256 + int(first[16:24], 16)
        target = first_no + n + 1
        while True:
            cur = pg.current_wal_file()
            if int(cur[8:16], 16) * 256 + int(cur[16:24], 16) >= target:
                break
            if kind == "tpcb":
                pg.psql("CHECKPOINT")
                pg.pgbench(["-T", "5", "-c", "4", "-j", "2", "-M", "prepared", "-n"])
            else:
                pg.psql("INSERT INTO hex SELECT " + " || ".join(["md5(random()::text)"] * 8)
                        + " FROM generate_series(1, 40000)")
        pg.switch_wal()
        last = pg.current_wal_file()
        names = sorted(f for f in os.listdir(pg.datadir / "pg_wal")
                       if re.fullmatch(r"[0-9A-F]{24}", f) and first <= f < last)[:n]
        out = self.ws.mkdir("segments", kind, mode=0o755)
        paths = []
        for f in names:
            shutil.copyfile(pg.datadir / "pg_wal" / f, out / f)
            paths.append(out / f)
        assert len(paths) == n, (len(paths), n)
        assert all(p.stat().st_size == SEG for p in paths)
        return paths

    def zstd_ratio(self, segs: list[Path]) -> float:
        total = comp = 0
        for s in segs:
            r = subprocess.run(["zstd", "-3", "-q", "-c", str(s)], stdout=subprocess.PIPE, check=True)
            total += s.stat().st_size
            comp += len(r.stdout)
        return total / comp

    # ============================================================================ section: wal
    def bench_multirepo(self) -> None:
        """The wal section's WAL sets, pushed into two repositories at once (fs + S3) only."""
        self.bench_wal(two_repositories_only=True)

    def bench_wal(self, two_repositories_only: bool = False) -> None:
        a = self.args
        src = self.new_cluster("src", archive_mode="on", archive_command="/bin/true", wal_keep_size="4GB",
                               max_wal_size="4GB", checkpoint_timeout="30min")
        src.start()
        src.pgbench_init(scale=10, extra_args=["-q"])
        sets = {}
        for kind in ("tpcb", "hex"):
            segs = self.gen_segments(src, kind, a.segments + 1)   # [0] warms up, [1:] are timed
            ratio = self.zstd_ratio(segs[1:])
            sets[kind] = segs
            self.res.info[f"walset_{kind}_zstd3_ratio"] = round(ratio, 3)
            log(f"{kind}: {len(segs) - 1} segments, zstd -3 ratio {ratio:.2f}")
            if not two_repositories_only:
                self.wal_index_cost(kind, segs[1:])
        # The data directory the calls run in: a copy of src (same system identifier in pg_control).
        pgdata = self.ws.path("pgdata-copy")
        shutil.copytree(src.datadir, pgdata, symlinks=True,
                        ignore=lambda d, names: names if d.endswith("/pg_wal") or d.endswith("/archive_status")
                        else [n for n in names if n in ("postmaster.pid", "postmaster.opts")])
        for sub in ("pg_wal", "pg_wal/archive_status"):
            (pgdata / sub).mkdir(exist_ok=True)
        chown_to(pgdata, recursive=True)
        os.chmod(pgdata, 0o700)
        try:
            for kind, segs in sets.items():
                wal = pgdata / "pg_wal"
                for f in wal.iterdir():
                    if f.is_file():
                        f.unlink()
                for f in (wal / "archive_status").iterdir():
                    f.unlink()
                for s in segs:
                    os.link(s, wal / s.name) if os.stat(s).st_dev == os.stat(wal).st_dev else shutil.copy(s, wal)
                chown_to(wal, recursive=True)
                for storage in ([] if two_repositories_only else self.storages()):
                    for enc in (False, True):
                        try:
                            self.wal_case(src, pgdata, kind, segs, storage, enc)
                        except (KeyboardInterrupt, SystemExit):
                            raise
                        except Exception as e:
                            self.res.note(f"wal {kind} {storage} enc={enc} failed: {str(e)[:1200]}")
                if "s3" in self.storages():
                    try:
                        self.two_repository_case(pgdata, kind, segs)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except Exception as e:
                        self.res.note(f"wal {kind} fs+s3 failed: {str(e)[:1200]}")
        finally:
            self.drop_cluster(src)
            remove_tree(pgdata)

    def two_repository_config(self, name: str) -> Path:
        """A pgvault.toml writing into an S3 repository and a local one ([repositories.local]) at once."""
        conf = self.pv_config("s3", False, name, push_parallel=1)
        local = self.ws.path("repos", f"{name}-local")
        with open(conf, "a") as f:
            f.write(f'\n[repositories.local]\ntype = "fs"\npath = "{local}"\n')
        run([self.tools["repo-init"], "--config", str(conf), "--repo", "local"], user=PG_USER, cwd=self.ws.root,
            check=True, timeout=120)
        return conf

    def two_repository_case(self, pgdata: Path, kind: str, segs: list[Path]) -> None:
        """wal-push into S3 and a local directory at once (issue: at most 1.15x the slower single push),
        beside wal-push into each alone; one process per segment, no look-ahead, interleaved."""
        names = [s.name for s in segs]
        case = f"push {kind} two repositories (fs + s3) zstd-3"
        log(f"wal: {case}")
        tools = {"wal-push fs + s3": lambda n: self.two_repository_config(n),
                 "wal-push s3 alone": lambda n: self.pv_config("s3", False, n, push_parallel=1),
                 "wal-push fs alone": lambda n: self.pv_config("fs", False, n, push_parallel=1)}
        self.res.pair("wal", case, "wal-push fs + s3", [t for t in tools if t != "wal-push fs + s3"])
        for _ in range(self.args.reps):
            for tool, make in tools.items():
                name = self.uniq("m")
                conf = make(name)
                cmd = lambda n: [self.tools["wal-push"], "--config", conf, f"pg_wal/{n}"]  # noqa: E731
                Timed.call(cmd(names[0]), pgdata)          # warm-up, not timed
                total, cpu = 0.0, 0.0
                for n in names[1:]:
                    dt, _, _, _ = Timed.call(cmd(n), pgdata)
                    total += dt
                    cpu += Timed.last_cpu
                self.res.add("wal", case, tool, total * 1000 / len(names[1:]), "ms/seg",
                             cpu_ms=round(cpu * 1000 / len(names[1:]), 1))
                for local in (self.ws.path("repos", name), self.ws.path("repos", f"{name}-local")):
                    remove_tree(local)

    def wal_index_cost(self, kind: str, segs: list[Path]) -> None:
        """wal-push's WAL index scan vs the encode (zstd-3 + SHA-256) of the same segments, in process."""
        exe = Path(os.environ["PGVAULT_BIN"]) / "tests" / "wal_index_bench_test"
        if not exe.is_file():
            self.res.note(f"wal index cost skipped: {exe} not built")
            return
        case = f"index {kind} in-process (median over segments)"
        self.res.pair("wal", case, "wal index scan", ["encode zstd-3 + sha256"])
        env = dict(os.environ, PGVAULT_BENCH_WAL_SEGMENTS=":".join(str(s) for s in segs))
        for _ in range(self.args.reps):
            r = subprocess.run([str(exe), "--gtest_also_run_disabled_tests",
                                "--gtest_filter=WalIndex.DISABLED_BenchScanVsEncode"],
                               env=env, stdout=subprocess.PIPE, text=True, timeout=600)
            m = re.search(r"wal-index-bench: segments=(\d+) scan_ms=([0-9.]+) encode_ms=([0-9.]+) ratio=([0-9.]+)",
                          r.stdout)
            if r.returncode != 0 or not m:
                raise RuntimeError(f"{exe} failed ({r.returncode}): {r.stdout[-1200:]}")
            self.res.add("wal", case, "wal index scan", float(m.group(2)), "ms/seg")
            self.res.add("wal", case, "encode zstd-3 + sha256", float(m.group(3)), "ms/seg")
        log(f"index {kind}: scan {m.group(2)} ms, encode {m.group(3)} ms per segment (last pass)")

    def wal_case(self, src: PgCluster, pgdata: Path, kind: str, segs: list[Path], storage: str,
                 enc: bool) -> None:
        a = self.args
        names = [s.name for s in segs]
        timed = names[1:]
        case = f"{kind} {storage}{' aes' if enc else ''} zstd-3"
        log(f"wal: {case}")
        status = pgdata / "pg_wal" / "archive_status"
        push_case, fetch_case = f"push {case}", f"fetch {case}"
        tools = ["wal-push", "pgbackrest archive-push"]
        if not enc:
            tools += ["wal-push look-ahead (parallel=4, .ready files)"]
        if storage == "fs" and not enc:
            tools += ["cp + fsync", "zstd -3 + fsync"]
        self.res.pair("wal", push_case, "wal-push", tools[1:])
        last_repo: dict[str, tuple[Path, str]] = {}
        for rep in range(a.reps):
            for tool in tools:
                name = self.uniq("r")
                for f in status.iterdir():
                    f.unlink()
                ready = tool.startswith("wal-push look-ahead")
                if tool.startswith("wal-push"):
                    conf = self.pv_config(storage, enc, name, push_parallel=4 if ready else 1)
                    cmd = lambda n: [self.tools["wal-push"], "--config", conf, f"pg_wal/{n}"]  # noqa: E731
                elif tool.startswith("pgbackrest"):
                    conf = self.pb_config(storage, enc, name, pgdata, None)
                    self.stanza_create(conf, src)
                    cmd = lambda n: self.pb(conf, "archive-push", f"pg_wal/{n}")  # noqa: E731
                else:
                    dst = self.ws.mkdir("repos", name, mode=0o755)
                    if tool.startswith("cp"):
                        cmd = lambda n: ["cp", f"pg_wal/{n}", f"{dst}/{n}"]  # noqa: E731
                    else:
                        cmd = lambda n: ["zstd", "-3", "-q", f"pg_wal/{n}", "-o", f"{dst}/{n}.zst"]  # noqa: E731
                Timed.call(cmd(names[0]), pgdata)          # warm-up: repository initialised, not timed
                if ready:   # PostgreSQL's view: every timed segment is waiting, marked .ready
                    for n in timed:
                        (status / f"{n}.ready").touch()
                    chown_to(status, recursive=True)
                total, rss, cpu = 0.0, 0, 0.0
                for n in timed:
                    dt, kib, _, _ = Timed.call(cmd(n), pgdata)
                    cpu += Timed.last_cpu
                    if tool.startswith(("cp", "zstd")):
                        t0 = time.perf_counter()
                        out = dst / (n if tool.startswith("cp") else f"{n}.zst")
                        fsync_path(out)
                        fsync_path(dst)
                        dt += time.perf_counter() - t0
                    if ready:
                        (status / f"{n}.ready").rename(status / f"{n}.done")
                    total += dt
                    rss = max(rss, kib)
                wait_detached(str(self.ws.path("conf")))
                self.res.add("wal", push_case, tool, total * 1000 / len(timed), "ms/seg",
                             cpu_ms=round(cpu * 1000 / len(timed), 1))
                if tool.startswith("wal-push"):
                    label = f"wal-push {storage}{' aes' if enc else ''}{' look-ahead' if ready else ''}"
                    self.res.note_rss(label, rss)
                if tool in ("wal-push", "pgbackrest archive-push"):
                    old = last_repo.get(tool)
                    if old and storage == "fs":
                        remove_tree(self.ws.path("repos", old[1]))
                    last_repo[tool] = (conf, name)
                elif storage == "fs":
                    remove_tree(self.ws.path("repos", name))
        # fetch from the last repositories written
        fcase_tools = ["wal-fetch", "pgbackrest archive-get", "wal-fetch (prefetch=0)"]
        self.res.pair("wal", fetch_case, "wal-fetch", fcase_tools[1:])
        target = "pg_wal/RECOVERYXLOG"
        pv_conf, pv_name = last_repo["wal-push"]
        pb_conf, _ = last_repo["pgbackrest archive-push"]
        spool = self.ws.path("spool", pv_name, "fetch")
        for rep in range(a.reps):
            for tool in fcase_tools:
                if tool == "wal-fetch":
                    remove_tree(spool)
                    cmd = lambda n: [self.tools["wal-fetch"], "--config", pv_conf, n, target]  # noqa: E731
                elif tool == "wal-fetch (prefetch=0)":
                    remove_tree(spool)
                    cmd = lambda n: [self.tools["wal-fetch"], "--config", pv_conf, "--set", "fetch.prefetch=0",  # noqa: E731
                                     n, target]
                else:
                    cmd = lambda n: self.pb(pb_conf, "archive-get", n, target)  # noqa: E731
                total, rss, cpu = 0.0, 0, 0.0
                for n in timed:
                    (pgdata / target).unlink(missing_ok=True)   # PostgreSQL removes it before each call
                    dt, kib, _, _ = Timed.call(cmd(n), pgdata)
                    cpu += Timed.last_cpu
                    total += dt
                    rss = max(rss, kib)
                    if (pgdata / target).stat().st_size != SEG:
                        raise RuntimeError(f"{tool} wrote a wrong size for {n}")
                wait_detached(str(self.ws.path("conf")))
                (pgdata / target).unlink()
                self.res.add("wal", fetch_case, tool, total * 1000 / len(timed), "ms/seg",
                             cpu_ms=round(cpu * 1000 / len(timed), 1))
                if tool.startswith("wal-fetch"):
                    self.res.note_rss(f"wal-fetch {storage}{' aes' if enc else ''}", rss)
        if storage == "fs":
            for _, name in last_repo.values():
                remove_tree(self.ws.path("repos", name))

    # ====================================================================== section: sustained
    def bench_sustained(self) -> None:
        a = self.args
        cases = []
        for storage in self.storages():
            cases += [("wal-push", storage), ("pgbackrest archive-push", storage)]
        cases.append(("cp (no fsync)", "fs"))
        for storage in self.storages():
            self.res.pair("sustained", f"drain {storage}", "wal-push", ["pgbackrest archive-push"]
                          + (["cp (no fsync)"] if storage == "fs" else []))
        for rep in range(a.sustained_reps):
            for tool, storage in cases:
                try:
                    self.sustained_one(tool, storage)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:
                    self.res.note(f"sustained {tool} {storage} failed: {str(e)[:1200]}")

    def sustained_one(self, tool: str, storage: str) -> None:
        a = self.args
        name = self.uniq("sus")
        log(f"sustained: {tool} {storage} ({a.duration}s pgbench)")
        pg = self.new_cluster(name, archive_mode="on", archive_command="/bin/false", max_wal_size="64MB",
                              min_wal_size="32MB", checkpoint_timeout="30s")
        pbconf = None
        if tool == "wal-push":
            conf = self.pv_config(storage, False, name)
            cmd = f"{self.tools['wal-push']} --config {conf} %p"
        elif tool.startswith("pgbackrest"):
            pbconf = self.pb_config(storage, False, name, pg.datadir, pg)
            cmd = f"pgbackrest --config={pbconf} --stanza={STANZA} archive-push %p"
        else:
            dst = self.ws.mkdir("repos", name, mode=0o755)
            cmd = f"test ! -f {dst}/%f && cp %p {dst}/%f"
        pg.configure(archive_command=cmd)
        try:
            pg.start()
            if pbconf:
                self.stanza_create(pbconf, pg)
            pg.pgbench_init(scale=a.wal_scale, extra_args=["-q"])
            pg.wait_archived(pg.switch_wal(), timeout=600)
            self.wait_drained(pg, 600)
            pg.psql("SELECT pg_stat_reset_shared('archiver')")
            lsn0 = pg.scalar("SELECT pg_current_wal_lsn()")
            t0 = time.monotonic()
            out = pg.pgbench(["-T", str(a.duration), "-c", "4", "-j", "2", "-M", "prepared", "-n"],
                             timeout=a.duration + 600)
            t1 = time.monotonic()
            backlog = self.ready_count(pg)
            st = pg.archiver_stats()
            wal_mb = int(pg.scalar(f"SELECT pg_current_wal_lsn() - '{lsn0}'::pg_lsn")) / 1e6
            self.wait_drained(pg, 3600)
            drain = time.monotonic() - t1
            st2 = pg.archiver_stats()
            tps = re.search(r"tps = ([0-9.]+)", out)
            self.res.add("sustained", f"drain {storage}", tool, drain, "s",
                         backlog_ready=backlog, archived_at_end=int(st["archived_count"]),
                         failed=int(st2["failed_count"]), wal_MB=round(wal_mb, 1),
                         wal_MBps=round(wal_mb / (t1 - t0), 1), tps=float(tps.group(1)) if tps else 0.0)
            log(f"  backlog {backlog} .ready, archived {st['archived_count']}, failed {st2['failed_count']}, "
                f"drain {drain:.1f}s, WAL {wal_mb:.0f} MB")
        finally:
            self.drop_cluster(pg)
            if storage == "fs":
                remove_tree(self.ws.path("repos", name))

    @staticmethod
    def ready_count(pg: PgCluster) -> int:
        return sum(1 for f in os.listdir(pg.datadir / "pg_wal" / "archive_status") if f.endswith(".ready"))

    def wait_drained(self, pg: PgCluster, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_count(pg) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"archive backlog not drained after {timeout}s: {pg.archiver_stats()}")
            time.sleep(0.1)

    # ======================================================================= section: recovery
    def bench_recovery(self) -> None:
        a = self.args
        pg = self.new_cluster("rec-primary", archive_mode="on", archive_command="/bin/false",
                              max_wal_size="256MB", checkpoint_timeout="5min")
        repos = {}   # (tool, storage) -> conf
        cmds = []
        for storage in self.storages():
            pv = self.pv_config(storage, False, self.uniq("recpv"))
            pb = self.pb_config(storage, False, self.uniq("recpb"), pg.datadir, pg)
            repos[("wal-fetch", storage)] = pv
            repos[("pgbackrest archive-get", storage)] = pb
            cmds += [f"{self.tools['wal-push']} --config {pv} %p",
                     f"pgbackrest --config={pb} --stanza={STANZA} archive-push %p"]
        pg.configure(archive_command=" && ".join(cmds))
        base = self.ws.path("rec-base")
        try:
            pg.start()
            for (tool, _), conf in repos.items():
                if tool.startswith("pgbackrest"):
                    self.stanza_create(conf, pg)
            pg.pgbench_init(scale=a.wal_scale, extra_args=["-q"])
            pg.basebackup(base)
            label = (base / "backup_label").read_text()
            start_lsn = re.search(r"START WAL LOCATION: (\S+)", label).group(1)
            log(f"recovery: load {a.recovery_duration}s, archiving to {len(repos)} repositories")
            pg.pgbench(["-T", str(a.recovery_duration), "-c", "4", "-j", "2", "-M", "prepared", "-n"],
                       timeout=a.recovery_duration + 600)
            end_lsn = pg.scalar("SELECT pg_current_wal_lsn()")
            wal_bytes = int(pg.scalar(f"SELECT '{end_lsn}'::pg_lsn - '{start_lsn}'::pg_lsn"))
            count = pg.scalar("SELECT sum(abalance) FROM pgbench_accounts")
            pg.wait_archived(pg.switch_wal(), timeout=1800)
            pg.stop("fast")
            self.res.info["recovery_wal_MB"] = round(wal_bytes / 1e6, 1)
            for storage in self.storages():
                self.res.pair("recovery", f"replay {storage}", "wal-fetch", ["pgbackrest archive-get"])
            for rep in range(a.recovery_reps):
                for storage in self.storages():
                    for tool in ("wal-fetch", "pgbackrest archive-get"):
                        self.recover_one(tool, storage, repos[(tool, storage)], base, wal_bytes, count)
        finally:
            self.drop_cluster(pg)
            remove_tree(base)

    def recover_one(self, tool: str, storage: str, conf: Path, base: Path, wal_bytes: int, check: str) -> None:
        name = self.uniq("rc")
        r = self.ws.cluster(name)
        r.init_from_backup(base)
        if tool == "wal-fetch":
            remove_tree(self.ws.path("spool", conf.stem, "fetch"))
            cmd = f"{self.tools['wal-fetch']} --config {conf} %f %p"
        else:
            cmd = f"pgbackrest --config={conf} --stanza={STANZA} --pg1-path={r.datadir} archive-get %f \"%p\""
        r.configure(archive_mode="off", restore_command=cmd)
        r.enable_recovery()
        try:
            subprocess.run(["sync"], check=False)
            t0 = time.monotonic()
            r.start(wait=False)
            r.wait_for_recovery_end(timeout=3600)
            dt = time.monotonic() - t0
            got = r.scalar("SELECT sum(abalance) FROM pgbench_accounts")
            if got != check:
                raise RuntimeError(f"recovery with {tool} gave sum(abalance) {got}, expected {check}")
            self.res.add("recovery", f"replay {storage}", tool, dt, "s", MBps=round(wal_bytes / 1e6 / dt, 1))
            log(f"recovery {tool} {storage}: {dt:.1f}s, {wal_bytes / 1e6 / dt:.1f} MB/s of WAL")
        finally:
            wait_detached(str(conf))
            self.drop_cluster(r)

    # ========================================================================= section: backup
    def bench_multipart(self) -> None:
        """Multipart upload and ranged download of one 1 GiB object to the S3 test server (plain http,
        straight to Swift): pgvault's storage layer (s3-storage-tool) vs awscli (both multipart)."""
        if not self.s3:
            self.res.note("multipart skipped: no S3 server")
            return
        tool = Path(os.environ["PGVAULT_BIN"]) / "s3-storage-tool"
        if not tool.is_file():
            self.res.note("multipart skipped: s3-storage-tool not built")
            return
        size = 1 << 30
        blob = self.ws.path("multipart.bin")
        block = os.urandom(1 << 20)
        with open(blob, "wb") as f:
            for _ in range(size >> 20):
                f.write(block)
        env = dict(self.s3.env(), PGVAULT_S3_ENDPOINT=self.s3.endpoint, PGVAULT_S3_BUCKET=self.s3_bucket,
                   PGVAULT_S3_ACCESS_KEY_ID=self.s3.access_key, PGVAULT_S3_SECRET_ACCESS_KEY=self.s3.secret_key)
        out = self.ws.path("multipart.out")
        cases = {
            "upload s3-storage-tool (pgvault storage layer)": [str(tool), "put", "mp/pgvault", str(blob)],
            "upload aws s3 cp": ["aws", "--endpoint-url", self.s3.endpoint, "s3", "cp", "--quiet", str(blob),
                                 f"s3://{self.s3_bucket}/mp/aws"],
            "download s3-storage-tool (pgvault storage layer)": [str(tool), "get", "mp/pgvault", str(out)],
            "download aws s3 cp": ["aws", "--endpoint-url", self.s3.endpoint, "s3", "cp", "--quiet",
                                   f"s3://{self.s3_bucket}/mp/aws", str(out)],
        }
        for direction in ("upload", "download"):
            names = [n for n in cases if n.startswith(direction)]
            self.res.pair("multipart", f"{direction} 1 GiB", names[0], names[1:])
        for _ in range(max(1, min(self.args.reps, 3))):
            for name, cmd in cases.items():
                t0 = time.monotonic()
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
                dt = time.monotonic() - t0
                if r.returncode != 0:
                    self.res.note(f"multipart {name} failed: {r.stderr.strip()[-300:]}")
                    continue
                direction = name.split()[0]
                self.res.add("multipart", f"{direction} 1 GiB", name, dt, "s", MBps=round(size / 1e6 / dt, 1))
        blob.unlink()
        if out.exists():
            out.unlink()

    def bench_backup(self) -> None:
        """Full backup and restore of one pgbench database, per storage (fs, then S3 when it runs): base-push
        against pgBackRest at its best for a full (process-max 2, repo-bundle and repo-block on), on fs
        pg_basebackup, on S3 barman-cloud-backup; pitr-prepare against pgbackrest restore (process-max 2),
        on fs tar -x, on S3 barman-cloud-restore."""
        a = self.args
        pg = self.new_cluster("bk-primary", archive_mode="on", archive_command="/bin/false",
                              max_wal_size="1GB", checkpoint_timeout="15min")
        try:
            pg.start()
            log(f"backup: pgbench -i -s {a.scale}")
            pg.pgbench_init(scale=a.scale, extra_args=["-q"], timeout=3600)
            pg.psql("CHECKPOINT")
            size = int(pg.scalar("SELECT sum(pg_database_size(oid)) FROM pg_database"))
            self.res.info["backup_db_MB"] = round(size / 1e6, 1)
            self.res.note("backup: pgBackRest with process-max=2, repo1-bundle=y, repo1-block=y (beta=y in 2.45), "
                          "compress zst:3; base-push with [backup] parallel = 2, zstd 3")
            restores = [(storage, *self.backups_into(pg, storage, size)) for storage in self.storages()]
            pg.stop("fast")
            for storage, pv, pb, tars, barman in restores:
                self.restores_from(storage, pv, pb, tars, barman, size, pg.pg_env())
        finally:
            self.drop_cluster(pg)

    def backups_into(self, pg: PgCluster, storage: str,
                     size: int) -> tuple[Path, Path, dict[str, Path], Optional[tuple[str, str]]]:
        """The backup rows of one storage, tools interleaved; archive_command pushes into this storage's two
        repositories only. Returns both configs, on fs the newest pg_basebackup tar directories, on S3 the
        prefix and name of the newest barman-cloud-backup (None without barman-cli-cloud)."""
        a = self.args
        pv = self.pv_config(storage, False, f"bkpv-{storage}")
        pv.write_text(pv.read_text() + f'\n[backup]\nconninfo = "{pg.conninfo}"\nparallel = 2\n')
        pb = self.pb_config(storage, False, f"bkpb-{storage}", pg.datadir, pg)
        pb.write_text(pb.read_text().replace("[global]\n", "[global]\nrepo1-bundle=y\nrepo1-block=y\nbeta=y\n", 1))
        pg.configure(archive_command=f"{self.tools['wal-push']} --config {pv} %p && "
                                     f"pgbackrest --config={pb} --stanza={STANZA} archive-push %p")
        pg.reload()
        self.stanza_create(pb, pg)
        case = f"backup {storage}"
        tools = ["base-push"] if "base-push" in self.tools else []
        if not tools:
            self.res.note("base-push not built: backup compared without it")
        tools.append("pgbackrest backup --type=full (process-max 2, bundle, block)")
        if storage == "fs":  # pg_basebackup writes local tar files whatever the repository
            tools += ["pg_basebackup -Ft", "pg_basebackup -Ft --compress=client-zstd:3"]
        barman_prefix = self.uniq("bkbarman")
        barman: Optional[tuple[str, str]] = None
        if storage == "s3" and shutil.which("barman-cloud-backup"):
            tools.append(BARMAN_BACKUP)
            self.res.note(f"backup: {BARMAN_BACKUP}: barman-cli-cloud's own default of 2 upload jobs, "
                          "no compression (its fastest on this loopback S3, as in the drain section), "
                          "--immediate-checkpoint; it takes the backup through pg_backup_start/stop, reading "
                          "the data directory itself")
        elif storage == "s3":
            self.res.note("backup: barman-cloud-backup not installed (PGVAULT_BENCH=1 scripts/setup.sh): its rows skipped")
        self.res.pair("backup", case, "base-push", tools[1:] if tools[0] == "base-push" else tools)
        tars: dict[str, Path] = {}
        env = pg.pg_env()
        barman_env = dict(env, **self.barman_env()) if BARMAN_BACKUP in tools else env
        for _ in range(a.backup_reps):
            for tool in tools:
                out = self.ws.path(self.uniq("bk"))
                if tool == "base-push":
                    argv = [self.tools["base-push"], "--config", pv]
                elif tool.startswith("pgbackrest"):
                    argv = self.pb(pb, "backup", "--type=full", "--process-max=2")
                elif tool == BARMAN_BACKUP:
                    barman = (barman_prefix, self.uniq("b"))
                    argv = ["barman-cloud-backup", "-h", pg.sockdir, "-p", pg.port, "-U", "postgres",
                            "--immediate-checkpoint", "-J", "2", "-n", barman[1], *self.barman_args(barman[0])]
                else:
                    argv = [pg_bin("pg_basebackup"), "-D", out, "-Ft", "-X", "none", "-c", "fast",
                            "-h", pg.sockdir, "-p", pg.port, "-U", "postgres"]
                    if "zstd" in tool:
                        argv.append("--compress=client-zstd:3")
                    make_dir(out, mode=0o700)
                kib = self.timed_backup_row(case, tool, argv, barman_env if tool == BARMAN_BACKUP else env, size)
                if tool == "base-push":
                    self.res.note_rss("base-push", kib)
                if tool.startswith("pg_basebackup"):
                    kind = "zstd" if "zstd" in tool else "plain"
                    if kind in tars:
                        remove_tree(tars[kind])
                    tars[kind] = out
        return pv, pb, tars, barman

    def timed_backup_row(self, case: str, tool: str, argv: list, env: dict, size: int) -> int:
        """One timed call of the backup section (after a sync): its row with MB/s and CPU seconds.
        Returns its peak RSS in KiB."""
        subprocess.run(["sync"], check=False)
        dt, kib, _, _ = Timed.call(argv, self.ws.root, env=env, timeout=7200)
        self.res.add("backup", case, tool, dt, "s", MBps=round(size / 1e6 / dt, 1), cpu_s=round(Timed.last_cpu, 2))
        log(f"{case} {tool}: {dt:.1f}s ({size / 1e6 / dt:.0f} MB/s)")
        return kib

    def restores_from(self, storage: str, pv: Path, pb: Path, tars: dict[str, Path],
                      barman: Optional[tuple[str, str]], size: int, env: dict) -> None:
        """The restore rows of one storage (the server stopped), tools interleaved; ``barman``: the prefix and
        name of the barman-cloud-backup restored by barman-cloud-restore."""
        case = f"restore {storage}"
        tools = ["pitr-prepare"] if "pitr-prepare" in self.tools else []
        if not tools:
            self.res.note("pitr-prepare not built: restore compared without it")
        tools.append("pgbackrest restore (process-max 2)")
        if "plain" in tars:
            tools.append("tar -x + fsync")
        if "zstd" in tars:
            tools.append("tar --zstd -x + fsync")
        if barman:
            tools.append(BARMAN_RESTORE)
        self.res.pair("backup", case, "pitr-prepare", tools[1:] if tools[0] == "pitr-prepare" else tools)
        barman_env = dict(env, **self.barman_env()) if barman else env
        for _ in range(self.args.backup_reps):
            for tool in tools:
                dest = self.ws.path(self.uniq("restore"))
                make_dir(dest, mode=0o700)
                if tool == "pitr-prepare":
                    argv = [self.tools["pitr-prepare"], "--config", pv, "--pgdata", dest, "--force"]
                elif tool.startswith("pgbackrest"):
                    argv = self.pb(pb, "restore", f"--pg1-path={dest}", "--process-max=2")
                elif tool == BARMAN_RESTORE:
                    prefix, name = barman
                    argv = ["barman-cloud-restore", *self.barman_args(prefix), name, dest]
                else:
                    zstd = "zstd" in tool
                    src = (tars["zstd"] / "base.tar.zst") if zstd else (tars["plain"] / "base.tar")
                    argv = ["sh", "-c", f"tar {'--zstd ' if zstd else ''}-xf {src} -C {dest} && "
                                        f"find {dest} -type f -print0 | xargs -0 sync"]
                kib = self.timed_backup_row(case, tool, argv, barman_env if tool == BARMAN_RESTORE else env, size)
                if tool == "pitr-prepare":
                    self.res.note_rss("pitr-prepare", kib)
                remove_tree(dest)

    def bench_incremental(self) -> None:
        incremental.IncrementalSection(self, Timed.call).run()

    def bench_copy(self) -> None:
        copy_section.CopySection(self, Timed.call).run()

    def bench_scale(self) -> None:
        scale.ScaleSection(self, Timed.call).run()

    def bench_drain(self) -> None:
        drain.DrainSection(self, wait_detached).run()

    # ----------------------------------------------------------------------------------- driver
    def run(self) -> None:
        a = self.args
        sections = [a.only] if a.only else ["wal", "sustained", "recovery", "multipart", "backup", "incremental", "drain"]
        self.res.info.update(reps=a.reps, segments=a.segments, scale=a.scale, duration=a.duration,
                             sections=sections, quick=a.quick)
        for s in sections:
            t0 = time.monotonic()
            try:
                getattr(self, f"bench_{s}")()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                self.res.note(f"section {s} failed: {type(e).__name__}: {str(e)[:1500]}")
            self.res.info[f"section_{s}_seconds"] = round(time.monotonic() - t0, 1)


def write_results(res: Results, args) -> None:
    res.info["loadavg_end"] = os.getloadavg()
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    data = {"info": res.info, "notes": res.notes, "peak_rss_kib": res.rss, "rows": res.table()}
    (outdir / "latest.json").write_text(json.dumps(data, indent=1) + "\n")
    i = res.info
    md = [f"# pgvault benchmark — {i.get('date')}", "",
          f"Host: {i.get('host_cores')} cores (shared, noisy: load {i['loadavg_start'][0]:.1f} at start, "
          f"{i['loadavg_end'][0]:.1f} at end), kernel {i.get('kernel')}; {i.get('postgres')}; "
          f"{i.get('pgbackrest')}; zstd {(re.findall(r'v([0-9.]+)', str(i.get('zstd'))) or ['?'])[0]}; "
          f"pgvault {i.get('git')} ({', '.join(i.get('pgvault_tools', []))}).", "",
          f"Run: `tests/bench/run.sh {' '.join(args.argv)}` — reps {i.get('reps')}, segments {i.get('segments')}, "
          f"scale {i.get('scale')}, sustained pgbench {i.get('duration')} s.", ""]
    for k in ("walset_tpcb_zstd3_ratio", "walset_hex_zstd3_ratio", "recovery_wal_MB", "backup_db_MB"):
        if k in i:
            md.append(f"- {k}: {i[k]}")
    md += ["", "Medians over the repetitions (tools interleaved A,B,A,B...); `pgvault/this` is the ratio of "
           "medians (below 1: pgvault faster). ms/seg = wall time per process call, one fresh process per "
           "16 MiB segment.", "", render_table(res, markdown=True), ""]
    if res.notes:
        md += ["Notes:", ""] + [f"- {n}" for n in res.notes] + [""]
    (outdir / "latest.md").write_text("\n".join(md))
    log(f"results: {outdir / 'latest.json'}, {outdir / 'latest.md'}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="repetitions of each per-segment pass (default 5)")
    p.add_argument("--segments", type=int, default=20, help="timed 16 MiB segments per WAL set (default 20)")
    p.add_argument("--scale", type=int, default=50, help="pgbench scale of the backup database (default 50)")
    p.add_argument("--wal-scale", type=int, default=10, help="pgbench scale for sustained/recovery (default 10)")
    p.add_argument("--duration", type=int, default=60, help="seconds of pgbench in the sustained test (default 60)")
    p.add_argument("--recovery-duration", type=int, default=30, help="seconds of load replayed (default 30)")
    p.add_argument("--sustained-reps", type=int, default=1)
    p.add_argument("--recovery-reps", type=int, default=None, help="default min(reps, 3)")
    p.add_argument("--backup-reps", type=int, default=3,
                   help="default 3: interleaved, because on this VM whichever tool writes first pays for\n"
                        "fresh page-cache memory (a single pass made pitr-prepare look 2.6x slower than it is)")
    p.add_argument("--quick", action="store_true", help="smoke run: scale 5, 2 reps, short loads")
    p.add_argument("--only", choices=["wal", "multirepo", "sustained", "recovery", "backup", "multipart", "incremental",
                                        "copy", "scale", "drain"])
    incremental.add_arguments(p)
    copy_section.add_arguments(p)
    scale.add_arguments(p)
    drain.add_arguments(p)
    p.add_argument("--no-s3", action="store_true", help="skip the S3 server even if helpers/swift.py exists")
    p.add_argument("--out", default=str(HERE / "results"), help="results directory")
    args = p.parse_args(argv)
    args.argv = argv
    if args.quick:
        args.reps = min(args.reps, 2)
        args.scale = min(args.scale, 5)
        args.wal_scale = min(args.wal_scale, 5)
        args.duration = min(args.duration, 15)
        args.recovery_duration = min(args.recovery_duration, 10)
        incremental.apply_quick(args)
        copy_section.apply_quick(args)
        scale.apply_quick(args)
        drain.apply_quick(args)
    if args.recovery_reps is None:
        args.recovery_reps = 1 if args.quick else min(args.reps, 3)

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    bench = Bench(args)
    interrupted = False
    try:
        bench.setup()
        if args.only in (None, "wal", "multirepo", "sustained", "recovery", "multipart", "backup", "copy", "scale", "drain"):
            bench.start_s3()
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # let the clean-up finish
        bench.close()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    if interrupted:
        return 130
    print(render_table(bench.res, markdown=False))
    if bench.res.notes:
        print("\nNotes:\n" + "\n".join(f"- {n}" for n in bench.res.notes))
    write_results(bench.res, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
