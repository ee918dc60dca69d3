"""Throw-away PostgreSQL clusters for the integration tests: Debian's 15 by default, 16, 17 or 18 with
``PGVAULT_PG_VERSION`` (see :data:`PG_VERSION`).

Typical use (the ``workspace`` fixture of conftest.py is a :class:`Workspace`)::

    archive = workspace.mkdir("archive")
    pg = workspace.cluster("primary")
    pg.initdb(checksums=True)
    pg.configure(archive_mode="on", archive_command=f"cp %p {archive}/%f")
    pg.start()
    pg.pgbench_init(scale=5)
    pg.wait_archived(pg.switch_wal())

    replica = workspace.cluster("restored")
    pg.basebackup(replica.datadir)                   # pg_basebackup -X none
    replica.enable_recovery({"restore_command": f"cp {archive}/%f %p"})
    replica.start()
    replica.wait_for_recovery_end()

Every server runs as :data:`~helpers.proc.PG_USER` (``postgres`` when the tests run as root), is a
direct child of the test process (so it is reaped and can be stopped by its pid), listens on a free TCP
port on 127.0.0.1 and on a unix socket in its own directory, and logs to ``<workdir>/server.log``
(``logging_collector`` is off; archive/restore command output lands there too).  Port, socket
directory and logging are passed on the postgres command line, so they override whatever a copied
``postgresql.conf`` says.

Safety nets: :meth:`Workspace.close` (used by the fixture) stops every cluster of the workspace and
removes its directory, even when the test failed; an ``atexit`` handler stops any server the helpers
started that is still running; and a server started from the main thread gets SIGQUIT (immediate
shutdown) from the kernel if the test process dies.  Nothing else is ever signalled.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from .proc import (PG_USER, CommandError, PathLike, PgvaultTools, RunResult, chown_to, make_dir,
                   make_tempdir, pid_alive, processes, remove_tree, run, user_popen_kwargs)

#: Debian 12's PostgreSQL 15: its client programs (psql, pgbench, pg_isready, pg_basebackup, and any
#: other program the chosen version's package lacks) talk to servers 15 to 18.
DEBIAN_BINDIR = Path("/usr/lib/postgresql/15/bin")

#: The major version of the servers the tests run: $PGVAULT_PG_VERSION (15, Debian's, by default; 16, 17
#: and 18 come from scripts/fetch-pg.sh, pinned in scripts/pg-versions.txt).
PG_VERSION = int(os.environ.get("PGVAULT_PG_VERSION", "15"))

_REPO_ROOT = Path(__file__).resolve().parents[3]


def _server_bindir(version: int) -> Path:
    """The bin directory of PostgreSQL ``version``'s server programs ($PGVAULT_PG_BINDIR wins); 16+
    are fetched into the cache on first use (a cached, verified version is not downloaded again)."""
    if os.environ.get("PGVAULT_PG_BINDIR"):
        return Path(os.environ["PGVAULT_PG_BINDIR"])
    if version == 15:
        return DEBIAN_BINDIR
    res = subprocess.run([str(_REPO_ROOT / "scripts" / "fetch-pg.sh"), "--bindir", str(version)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"PGVAULT_PG_VERSION={version}: scripts/fetch-pg.sh failed: {res.stderr.strip()}")
    return Path(res.stdout.strip().splitlines()[-1])


#: Directory of the chosen version's server programs (initdb, postgres, pg_ctl, ...).
PG_BINDIR = _server_bindir(PG_VERSION)

#: Programs that must come from the server's own version (the others fall back to Debian's 15).
_SERVER_PROGRAMS = frozenset({"initdb", "postgres", "pg_ctl"})

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
QUERY_TIMEOUT = 60.0
WAIT_TIMEOUT = 120.0

_SOCKET_PATH_MAX = 107  # sizeof(sun_path) - 1 on Linux


class PgError(RuntimeError):
    """A server failed to start, died, or a wait timed out; the message ends with the log tail."""


def pg_bin(name: str) -> str:
    """Absolute path of a PostgreSQL program: from :data:`PG_BINDIR` when it has it (always for the
    server programs initdb, postgres and pg_ctl), else Debian's 15 (psql, pgbench, pg_isready, ...)."""
    path = PG_BINDIR / name
    if not path.is_file() and name not in _SERVER_PROGRAMS:
        path = DEBIAN_BINDIR / name
    if not path.is_file():
        raise FileNotFoundError(f"PostgreSQL program {path} not found (is postgresql-15 installed? "
                                f"PGVAULT_PG_VERSION={PG_VERSION}: scripts/fetch-pg.sh {PG_VERSION})")
    return str(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conf_value(value: Union[str, int, float, bool]) -> str:
    """Format a Python value for postgresql.conf: bools as on/off, numbers bare, strings quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


# Servers started by the helpers and not yet stopped: the only processes the safety nets touch.
_LIVE: "set[PgCluster]" = set()
_LIVE_LOCK = threading.Lock()


def stop_all_clusters(mode: str = "immediate", timeout: float = 15.0) -> None:
    """Stop every server the helpers started that is still running (atexit safety net)."""
    with _LIVE_LOCK:
        clusters = list(_LIVE)
    for cluster in clusters:
        try:
            cluster.stop(mode=mode, timeout=timeout)
        except Exception:  # pragma: no cover - last resort, keep going
            pass


atexit.register(stop_all_clusters)


try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def _parent_death_signal() -> None:
    """preexec_fn: have the kernel send SIGQUIT to the postmaster if the test process dies."""
    if _prctl is not None:
        _prctl(1, int(signal.SIGQUIT), 0, 0, 0)  # PR_SET_PDEATHSIG


class PgCluster:
    """One PostgreSQL data directory and (at most) one running postmaster for it.

    Layout under ``workdir`` (created and owned by ``postgres`` if missing): ``data/`` (PGDATA),
    ``sock/`` (unix socket directory), ``server.log``.  ``port`` is fixed now (a free port if None) so
    that :attr:`conninfo` can be written into configs before :meth:`start`; an automatically chosen
    port that turns out to be taken at the first start is replaced by another one.
    """

    def __init__(self, workdir: PathLike, port: Optional[int] = None, user: str = PG_USER):
        self.workdir = make_dir(workdir, user) if not Path(workdir).exists() else Path(workdir)
        self.user = user
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.log_path = self.workdir / "server.log"
        self.port = port if port is not None else free_port()
        self._auto_port = port is None
        self._started_once = False
        self._proc: Optional[subprocess.Popen] = None
        self._log_start = 0
        if len(str(self.sockdir / f".s.PGSQL.{self.port:05d}.lock")) > _SOCKET_PATH_MAX:
            raise PgError(f"socket path under {self.sockdir} is too long for a unix socket; "
                          f"use a shorter temp dir (PGVAULT_TEST_TMPDIR)")

    def __repr__(self) -> str:
        state = f"pid {self._proc.pid}" if self.is_running() else "stopped"
        return f"<PgCluster {self.workdir} port {self.port} {state}>"

    # ------------------------------------------------------------------ running commands as postgres

    @property
    def conninfo(self) -> str:
        """libpq connection string for this server (unix socket, user postgres, db postgres)."""
        return f"host={self.sockdir} port={self.port} user=postgres dbname=postgres"

    def pg_env(self) -> dict[str, str]:
        """Our environment plus PGHOST/PGPORT/PGUSER/PGDATABASE/PGDATA pointing at this cluster."""
        env = dict(os.environ)
        env.update(PGHOST=str(self.sockdir), PGPORT=str(self.port), PGUSER="postgres",
                   PGDATABASE="postgres", PGDATA=str(self.datadir))
        for var in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGHOSTADDR"):
            env.pop(var, None)
        return env

    def run(self, cmd: Sequence[PathLike], env: Optional[Mapping[str, str]] = None,
            cwd: Optional[PathLike] = None, timeout: float = WAIT_TIMEOUT,
            input: Optional[str] = None, check: bool = False) -> RunResult:
        """Run ``cmd`` as the cluster's OS user with :meth:`pg_env` (plus ``env`` overrides).

        The default cwd is the data directory if it exists (as for archive_command), else the workdir.
        """
        full_env = self.pg_env()
        full_env.update(env or {})
        if cwd is None:
            cwd = self.datadir if self.datadir.is_dir() else self.workdir
        return run(cmd, user=self.user, env=full_env, cwd=cwd, timeout=timeout, input=input,
                   check=check)

    # ------------------------------------------------------------------------------ initdb & config

    def initdb(self, checksums: bool = False, extra_args: Iterable[str] = (),
               settings: Optional[Mapping[str, object]] = None) -> "PgCluster":
        """Create the data directory: ``initdb -A trust -U postgres [--data-checksums]`` (without
        ``checksums``, ``--no-data-checksums`` on PostgreSQL 18, which enables them by default).

        ``settings`` are then appended to postgresql.conf (see :meth:`configure`).
        """
        args = [pg_bin("initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--no-locale", "--no-sync"]
        if checksums:
            args.append("--data-checksums")
        elif PG_VERSION >= 18:
            args.append("--no-data-checksums")
        args += list(extra_args)
        self.run(args, cwd=self.workdir, timeout=300, check=True)
        self.append_conf("# --- pgvault test harness ---\n"
                         "log_line_prefix = '%m [%p] '\n")
        if settings:
            self.configure(settings)
        return self

    def append_conf(self, text: str, filename: str = "postgresql.conf") -> None:
        """Append raw lines to a config file of the data directory (later lines win)."""
        path = self.datadir / filename
        existed = path.exists()
        with open(path, "a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        if not existed:
            chown_to(path, self.user)

    def configure(self, settings: Optional[Mapping[str, object]] = None, **kwargs: object) -> None:
        """Append ``key = value`` lines to postgresql.conf, e.g.
        ``configure(archive_mode="on", archive_command="wal-push %p", wal_level="replica")``.

        Values go through :func:`conf_value` (strings quoted).  Takes effect at the next start, or
        at :meth:`reload` for reloadable settings.
        """
        items = dict(settings or {}, **kwargs)
        self.append_conf("".join(f"{k} = {conf_value(v)}\n" for k, v in items.items()))

    def enable_recovery(self, settings: Optional[Mapping[str, object]] = None,
                        standby: bool = False) -> None:
        """Make the (stopped) data directory start in recovery: write ``settings`` (restore_command,
        recovery_target_*, ...) and ``recovery.signal`` (or ``standby.signal`` if ``standby``)."""
        if settings:
            self.configure(settings)
        signal_file = self.datadir / ("standby.signal" if standby else "recovery.signal")
        signal_file.touch()
        chown_to(signal_file, self.user)

    def init_from_backup(self, backup_dir: PathLike) -> "PgCluster":
        """Use a copy of ``backup_dir`` (a base backup or the data dir of a stopped cluster) as this
        cluster's data directory.  (To avoid the copy, pass :attr:`datadir` to :meth:`basebackup`.)"""
        if self.datadir.exists():
            raise PgError(f"{self.datadir} already exists")
        shutil.copytree(backup_dir, self.datadir, symlinks=True)
        chown_to(self.datadir, self.user, recursive=True)
        os.chmod(self.datadir, 0o700)
        for stale in ("postmaster.pid", "postmaster.opts"):
            (self.datadir / stale).unlink(missing_ok=True)
        return self

    # ---------------------------------------------------------------------------------- start/stop

    def is_running(self) -> bool:
        """True while the postmaster we started has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        """The postmaster's pid from the first line of postmaster.pid (None if there is none)."""
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
            return int(first) if first else None
        except (FileNotFoundError, ValueError):
            return None

    def start(self, wait: bool = True, timeout: float = START_TIMEOUT) -> "PgCluster":
        """Start the postmaster; with ``wait``, block until it accepts connections.

        Raises :class:`PgError` (with the log tail) if it exits or is not ready within ``timeout``.
        Use ``wait=False`` for servers that may legitimately exit or stay unavailable (recovery that
        is expected to abort or shut down at its target), then :meth:`wait_exit` /
        :meth:`wait_for_recovery_end` / :meth:`wait_ready`.
        """
        if self.is_running():
            raise PgError(f"{self} is already running")
        if not (self.datadir / "PG_VERSION").exists():
            raise PgError(f"{self.datadir} is not a data directory (call initdb or basebackup first)")
        make_dir(self.sockdir, self.user)
        attempts = 1 if (self._started_once or not self._auto_port) else 5
        for attempt in range(attempts):
            self._spawn()
            if not wait:
                break
            try:
                self.wait_ready(timeout)
                break
            except PgError:
                log = self.log_text(since=self._log_start)
                if attempt + 1 < attempts and "Address already in use" in log and not self.is_running():
                    self._reap()
                    self.port = free_port()
                    continue
                if self.is_running():
                    self.stop(mode="immediate", timeout=15)
                raise
        self._started_once = True
        return self

    def _spawn(self) -> None:
        self.log_path.touch()
        chown_to(self.log_path, self.user)
        self._log_start = self.log_path.stat().st_size
        argv = [pg_bin("postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sockdir}",
                "-c", "logging_collector=off"]
        main_thread = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab", buffering=0) as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.datadir,
                start_new_session=True,  # own process group: ^C of pytest does not reach it
                preexec_fn=_parent_death_signal if main_thread else None,
                **user_popen_kwargs(self.user, self.pg_env()))
        with _LIVE_LOCK:
            _LIVE.add(self)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the server accepts connections (pg_isready), or raise :class:`PgError`."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise PgError(f"server {self.workdir} exited with {self._proc and self._proc.returncode}"
                              f" while starting" + self._log_excerpt())
            rc = run([pg_bin("pg_isready"), "-q", "-h", str(self.sockdir), "-p", str(self.port),
                      "-U", "postgres", "-d", "postgres", "-t", "2"], timeout=10).rc
            if rc == 0:
                return
            if time.monotonic() > deadline:
                raise PgError(f"server {self.workdir} not ready after {timeout}s" + self._log_excerpt())
            time.sleep(0.1)

    def stop(self, mode: str = "fast", timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Stop the server by pid and wait for it; return its exit code (None if it was not running).

        ``mode``: ``smart`` (SIGTERM), ``fast`` (SIGINT), ``immediate`` (SIGQUIT, crash-like: needs
        recovery at next start) or ``kill`` (SIGKILL to the postmaster and all its children, a real
        crash).  If the server has not exited after ``timeout`` it is shut down with SIGQUIT, then
        SIGKILL.  Only our own child (whose pid must match postmaster.pid) is signalled.
        """
        sigs = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT,
                "kill": signal.SIGKILL}
        if mode not in sigs:
            raise ValueError(f"unknown stop mode {mode!r}")
        if self._proc is None:
            return None
        proc = self._proc
        if proc.poll() is None:
            file_pid = self.pid
            if file_pid is not None and file_pid != proc.pid:
                raise PgError(f"postmaster.pid says {file_pid} but we started {proc.pid}; not signalling")
            if mode == "kill":  # whole process group, while the unreaped postmaster pins its pgid
                self._killpg(signal.SIGKILL)
                # A killed backend holds the shared memory until its exit completes: a start before
                # that fails with "pre-existing shared memory block is still in use".
                self._wait_group_dead(timeout)
            else:
                self._signal(sigs[mode])
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGQUIT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._killpg(signal.SIGKILL)
                    proc.wait(10)
        return self._reap()

    def _signal(self, sig: int) -> None:
        try:
            os.kill(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def _killpg(self, sig: int) -> None:
        # Only called before the postmaster is reaped, so its pid (== pgid, it is a session leader
        # through start_new_session) cannot have been reused by anyone else.
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _wait_group_dead(self, timeout: float) -> None:
        """Wait until every process of the postmaster's group has exited (gone, or a zombie: its memory,
        the shared memory attachment included, is released by then). Called before the postmaster is
        reaped, so the group id is still ours."""
        pgid = self._proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(p.pgrp == pgid and p.state not in ("Z", "X") for p in processes()):
                return
            time.sleep(0.01)

    def _reap(self) -> Optional[int]:
        proc = self._proc
        if proc is None:
            return None
        rc = proc.poll()
        if rc is not None:
            with _LIVE_LOCK:
                _LIVE.discard(self)
        return rc

    def wait_exit(self, timeout: float = WAIT_TIMEOUT) -> int:
        """Wait for the server to exit on its own (e.g. recovery aborted or target action
        ``shutdown``); return its exit code, or raise :class:`PgError` on timeout."""
        if self._proc is None:
            raise PgError(f"{self.workdir}: server was never started")
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PgError(f"server {self.workdir} still running after {timeout}s"
                          + self._log_excerpt()) from None
        return self._reap()

    def restart(self, mode: str = "fast") -> "PgCluster":
        """Stop (if running) and start again on the same port."""
        self.stop(mode)
        return self.start()

    def reload(self) -> None:
        """Re-read the configuration files (pg_reload_conf())."""
        self.psql("SELECT pg_reload_conf()")

    # -------------------------------------------------------------------------------------- queries

    def psql_run(self, sql: str, dbname: str = "postgres", timeout: float = QUERY_TIMEOUT,
                 extra_args: Iterable[str] = ()) -> RunResult:
        """Run SQL (one or more statements) with ``psql -X -A -t -q -v ON_ERROR_STOP=1``; no raise."""
        args = [pg_bin("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres", "-d", dbname,
                *extra_args, "-f", "-"]
        return self.run(args, cwd=self.workdir, timeout=timeout, input=sql)

    def psql(self, sql: str, dbname: str = "postgres", timeout: float = QUERY_TIMEOUT,
             extra_args: Iterable[str] = ()) -> str:
        """Run SQL and return its unaligned, tuples-only output (``|`` between columns, one row per
        line, trailing newline stripped).  Raises :class:`~helpers.proc.CommandError` on error."""
        res = self.psql_run(sql, dbname, timeout, extra_args)
        if res.rc != 0:
            raise CommandError(["psql", "-c", sql], res.rc, res.stdout, res.stderr,
                               f"server {self.workdir}")
        return res.stdout.rstrip("\n")

    def query(self, sql: str, dbname: str = "postgres", timeout: float = QUERY_TIMEOUT) -> list[tuple]:
        """Rows of the last statement's result as tuples of strings (NULL as '')."""
        out = self.psql(sql, dbname, timeout, extra_args=["-F", "\x1f"])
        return [tuple(line.split("\x1f")) for line in out.split("\n") if line != ""]

    def scalar(self, sql: str, dbname: str = "postgres", timeout: float = QUERY_TIMEOUT) -> str:
        """The single value of a one-row, one-column query, as a string."""
        return self.psql(sql, dbname, timeout).strip()

    # -------------------------------------------------------------------------------------- pgbench

    def pgbench_init(self, scale: int = 1, extra_args: Iterable[str] = (),
                     timeout: float = 600) -> str:
        """``pgbench -i -s scale`` into database postgres; returns its output (stdout + stderr)."""
        res = self.run([pg_bin("pgbench"), "-i", "-s", str(scale), *extra_args, "postgres"],
                       timeout=timeout, check=True)
        return res.stdout + res.stderr

    def pgbench(self, args: Iterable[str] = ("-T", "5"), timeout: float = 600) -> str:
        """Run ``pgbench <args> postgres`` (e.g. ``["-T", "5", "-c", "4"]``); returns stdout."""
        return self.run([pg_bin("pgbench"), *args, "postgres"], timeout=timeout, check=True).stdout

    # ------------------------------------------------------------------------------------------ WAL

    # pg_walfile_name() of an LSN exactly on a segment boundary names the segment before it up to
    # PostgreSQL 16 and the one starting there from 17 on; the segment holding the byte before the LSN is
    # the same on every version (the one a switch closed, or the last one closed when it did nothing).

    def switch_wal(self) -> str:
        """pg_switch_wal(); return the name of the segment it closed (the one to wait for), or when
        there was nothing to switch, of the last segment closed before."""
        return self.scalar("SELECT pg_walfile_name(pg_switch_wal() - 1)")

    def current_wal_file(self) -> str:
        """The segment being written: ``pg_walfile_name(pg_current_wal_lsn() - 1)`` (right after a
        switch, when the position is exactly on a boundary, this is still the closed segment)."""
        return self.scalar("SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")

    def archiver_stats(self) -> dict[str, str]:
        """The pg_stat_archiver row as a dict of strings (archived_count, last_archived_wal,
        failed_count, last_failed_wal, ...)."""
        cols = ["archived_count", "last_archived_wal", "last_archived_time", "failed_count",
                "last_failed_wal", "last_failed_time"]
        row = self.query(f"SELECT {', '.join(cols)} FROM pg_stat_archiver")[0]
        return dict(zip(cols, row))

    def is_archived(self, walfile: str, stats: Optional[Mapping[str, str]] = None) -> bool:
        """Whether PostgreSQL considers ``walfile`` archived (its ``.done`` status file, or for a
        segment already recycled, no ``.ready`` and last_archived_wal at or past it)."""
        status = self.datadir / "pg_wal" / "archive_status"
        if (status / f"{walfile}.done").exists():
            return True
        if (status / f"{walfile}.ready").exists():
            return False
        stats = stats or self.archiver_stats()
        last = stats["last_archived_wal"]
        if re.fullmatch(r"[0-9A-F]{24}", walfile) and re.fullmatch(r"[0-9A-F]{24}", last or ""):
            return last >= walfile
        return last == walfile

    def wait_archived(self, walfile: str, timeout: float = WAIT_TIMEOUT,
                      fail_on_error: bool = False) -> dict[str, str]:
        """Wait until ``walfile`` is archived; return the final pg_stat_archiver row.

        With ``fail_on_error``, raise as soon as failed_count grows.  Raises :class:`PgError` with
        the archiver stats and the log tail on timeout.
        """
        deadline = time.monotonic() + timeout
        failed0 = int(self.archiver_stats()["failed_count"])
        while True:
            stats = self.archiver_stats()
            if self.is_archived(walfile, stats):
                return stats
            if fail_on_error and int(stats["failed_count"]) > failed0:
                raise PgError(f"archiving failed while waiting for {walfile}: {stats}"
                              + self._log_excerpt())
            if time.monotonic() > deadline:
                raise PgError(f"{walfile} not archived after {timeout}s: {stats}" + self._log_excerpt())
            time.sleep(0.2)

    def wait_for_recovery_end(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until the server accepts queries and pg_is_in_recovery() is false (promoted).

        Raises :class:`PgError` at once if the server exits, or after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise PgError(f"server {self.workdir} exited with {self._proc and self._proc.returncode}"
                              f" during recovery" + self._log_excerpt())
            res = self.psql_run("SELECT pg_is_in_recovery()", timeout=10)
            if res.rc == 0 and res.stdout.strip() == "f":
                return
            if time.monotonic() > deadline:
                raise PgError(f"server {self.workdir} still in recovery after {timeout}s"
                              + self._log_excerpt())
            time.sleep(0.2)

    # --------------------------------------------------------------------------------------- backup

    def basebackup(self, target_dir: PathLike, extra_args: Iterable[str] = (),
                   timeout: float = 600) -> Path:
        """``pg_basebackup -X none -c fast`` into ``target_dir`` (must not exist or be empty; its
        parent must be writable by postgres).  With ``-X none`` the backup needs the WAL archive;
        the server waits for the backup's last segment to be archived.  Returns ``target_dir``."""
        target = Path(target_dir)
        if target.exists():
            chown_to(target, self.user)
        if PG_VERSION > 15:  # Debian's pg_basebackup refuses newer servers; the packages have none
            if list(extra_args):
                raise PgError(f"pg_basebackup {' '.join(extra_args)}: no pg_basebackup for PostgreSQL "
                              f"{PG_VERSION} (only Debian's 15); skip this on PGVAULT_PG_VERSION > 15")
            return self._copy_backup(target, timeout)
        self.run([pg_bin("pg_basebackup"), "-D", str(target), "-X", "none", "-c", "fast",
                  "--no-sync", "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres",
                  *extra_args], cwd=self.workdir, timeout=timeout, check=True)
        return target

    def _copy_backup(self, target: Path, timeout: float) -> Path:
        """What ``pg_basebackup -X none -c fast`` writes (plain format), made with the SQL backup API
        in one psql session: pg_backup_start, a copy of the data directory, pg_backup_stop (which waits
        for the last segment to be archived), then backup_label (and tablespace_map) from its result."""
        make_dir(target, self.user)
        script = ("SELECT 'started' FROM pg_backup_start('pgvault-test', true);\n"
                  f"\\! cp -a {shlex.quote(str(self.datadir))}/. {shlex.quote(str(target))}/ 2>/dev/null\n"
                  "SELECT 'file:' || f || ':' || translate(encode(convert_to(v, 'UTF8'), 'base64'), E'\\n', '')"
                  " FROM pg_backup_stop(true), LATERAL (VALUES ('backup_label', labelfile),"
                  " ('tablespace_map', spcmapfile)) AS x(f, v) WHERE v <> '';\n")
        out = self.psql(script, timeout=timeout)
        if not (target / "PG_VERSION").is_file():
            raise PgError(f"copying {self.datadir} into {target} failed")
        for stale in ("postmaster.pid", "postmaster.opts"):
            (target / stale).unlink(missing_ok=True)
        for sub in ("pg_wal", "pg_replslot"):
            remove_tree(target / sub)
            make_dir(target / sub, self.user)
        make_dir(target / "pg_wal" / "archive_status", self.user)
        if PG_VERSION >= 17:
            make_dir(target / "pg_wal" / "summaries", self.user)
        for line in out.splitlines():
            if line.startswith("file:"):
                _, name, value = line.split(":", 2)
                (target / name).write_bytes(base64.b64decode(value))
                chown_to(target / name, self.user)
        return target

    def controldata(self) -> dict[str, str]:
        """pg_controldata output as a dict ("Database system identifier", "Latest checkpoint's
        TimeLineID", ...).  The packages of 16-18 have none: Debian's 15 reads their pg_control, whose
        fields up to the checksum version have not moved (18's grew at the end, so 15's warns that the
        CRC does not match; test_harness checks the values read on every version)."""
        out = self.run([pg_bin("pg_controldata"), "-D", str(self.datadir)], check=True,
                       env={"LC_ALL": "C"}).stdout
        return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())
                if k.strip()}

    # ------------------------------------------------------------------------------------------ log

    def log_size(self) -> int:
        """Current size of the server log: pass it as ``since`` to look only at later lines."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since: int = 0) -> str:
        """The server log (from byte offset ``since``)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = WAIT_TIMEOUT, since: int = 0) -> re.Match:
        """Wait until regex ``pattern`` appears in the log (after offset ``since``); return the
        match or raise :class:`PgError`."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.MULTILINE)
        while True:
            m = rx.search(self.log_text(since))
            if m:
                return m
            if time.monotonic() > deadline:
                raise PgError(f"{pattern!r} not in {self.log_path} after {timeout}s"
                              + self._log_excerpt())
            time.sleep(0.2)

    def _log_excerpt(self, lines: int = 40) -> str:
        return f"\n--- last lines of {self.log_path} ---\n{self.log_tail(lines)}"


class Workspace:
    """A fresh temp directory (owned by postgres) holding clusters, archives and tool copies.

    :meth:`close` (also on ``with`` exit) stops every cluster created through :meth:`cluster` and
    removes the directory, even after a failure.  Set ``PGVAULT_TEST_KEEP=1`` to keep the directory
    for debugging (servers are still stopped).
    """

    def __init__(self, prefix: str = "pgvault-test-"):
        self.root = make_tempdir(prefix)
        self.clusters: list[PgCluster] = []
        #: pgvault executables reachable by postgres (copied into <root>/bin when needed).
        self.tools = PgvaultTools(self.root / "bin")
        self._closed = False
        _OPEN_WORKSPACES.add(self)

    def path(self, *parts: str) -> Path:
        """A path under the workspace (not created)."""
        return self.root.joinpath(*parts)

    def mkdir(self, *parts: str, mode: int = 0o700) -> Path:
        """Create a directory under the workspace owned by postgres (e.g. a WAL archive)."""
        return make_dir(self.path(*parts), mode=mode)

    def cluster(self, name: str, port: Optional[int] = None) -> PgCluster:
        """A new :class:`PgCluster` in ``<root>/<name>`` (no initdb yet)."""
        cluster = PgCluster(self.path(name), port=port)
        self.clusters.append(cluster)
        return cluster

    def tool(self, name: str) -> str:
        """Absolute path of pgvault executable ``name`` that postgres can run."""
        return self.tools.path(name)

    def close(self) -> None:
        """Stop all clusters (fast, then harder), then remove the directory."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for cluster in self.clusters:
            try:
                cluster.stop(mode="fast", timeout=30)
            except Exception as e:  # keep stopping the others
                errors.append(e)
                try:
                    cluster.stop(mode="kill", timeout=10)
                except Exception:
                    pass
        if not os.environ.get("PGVAULT_TEST_KEEP"):
            remove_tree(self.root)
        _OPEN_WORKSPACES.discard(self)
        if errors:
            raise PgError(f"errors while stopping clusters: {errors}")

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_OPEN_WORKSPACES: "set[Workspace]" = set()


@atexit.register
def _close_workspaces() -> None:
    for ws in list(_OPEN_WORKSPACES):
        try:
            ws.close()
        except Exception:
            pass
