"""Process, user and path helpers shared by the integration-test helpers.

The tests run as root in CI, but PostgreSQL (and the archive_command/restore_command it runs) must run
as the unprivileged ``postgres`` OS user.  Everything here knows about that split:

* :func:`run` runs a command, optionally as another user, with a timeout, returning ``(rc, out, err)``.
* :func:`make_tempdir` creates a fresh ``tempfile.mkdtemp()`` directory owned by the PostgreSQL user.
* :func:`pgvault_bin` / :func:`install_tools` / :class:`PgvaultTools` locate the pgvault executables of
  the build (``$PGVAULT_BIN``) and, when the build directory is not reachable by ``postgres`` (e.g. it is
  under ``/root``), copy them into a directory that is.

Switching user uses ``subprocess``'s ``user=``/``group=``/``extra_groups=`` (setuid in the child), so no
``runuser``/``sudo`` binary is needed; when the tests already run as the target user, commands run
directly.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence, Union

PathLike = Union[str, os.PathLike]

#: Default timeout (seconds) of :func:`run`.
DEFAULT_TIMEOUT = 120.0

#: The OS user PostgreSQL runs as: ``postgres`` when the tests run as root, else the current user
#: (PostgreSQL refuses to run as root, and a non-root user cannot switch to another one).
PG_USER = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


class RunResult(NamedTuple):
    """Result of :func:`run`; unpacks as ``rc, stdout, stderr``."""

    rc: int
    stdout: str
    stderr: str


class CommandError(RuntimeError):
    """A command run with ``check=True`` exited non-zero (or timed out)."""

    def __init__(self, cmd: Sequence[str], rc: Optional[int], stdout: str, stderr: str, note: str = ""):
        self.cmd, self.rc, self.stdout, self.stderr = list(cmd), rc, stdout, stderr
        what = "timed out" if rc is None else f"exited with {rc}"
        msg = f"command {what}: {' '.join(map(str, cmd))}"
        if note:
            msg += f" ({note})"
        if stdout.strip():
            msg += f"\n--- stdout ---\n{_tail(stdout)}"
        if stderr.strip():
            msg += f"\n--- stderr ---\n{_tail(stderr)}"
        super().__init__(msg)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _decode(data: Union[bytes, str, None]) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def user_ids(user: str) -> tuple[int, int]:
    """Return ``(uid, gid)`` of an OS user."""
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def needs_switch(user: Optional[str]) -> bool:
    """True when running a command as ``user`` requires changing the uid of the child."""
    return user is not None and pwd.getpwnam(user).pw_uid != os.geteuid()


def user_popen_kwargs(user: Optional[str], env: Optional[Mapping[str, str]] = None) -> dict:
    """Keyword arguments for :class:`subprocess.Popen` that run the child as ``user``.

    Sets uid, gid and the supplementary groups of ``user`` (not root's), and HOME/USER/LOGNAME in the
    environment so that tools do not try to read root's home.  Returns ``{"env": ...}`` only when no
    switch is needed.
    """
    full_env = dict(os.environ if env is None else env)
    if not needs_switch(user):
        return {"env": full_env}
    if os.geteuid() != 0:
        raise PermissionError(f"cannot run a command as {user!r}: not running as root")
    pw = pwd.getpwnam(user)
    full_env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
    return {
        "env": full_env,
        "user": pw.pw_uid,
        "group": pw.pw_gid,
        "extra_groups": os.getgrouplist(pw.pw_name, pw.pw_gid),
    }


def run(
    cmd: Sequence[PathLike],
    user: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[PathLike] = None,
    timeout: float = DEFAULT_TIMEOUT,
    input: Optional[str] = None,
    check: bool = False,
) -> RunResult:
    """Run ``cmd`` (a list) and return ``RunResult(rc, stdout, stderr)`` (text, decoded as UTF-8).

    ``user``: run as that OS user (e.g. :data:`PG_USER`); ``None`` runs as the current user.
    ``env``: the complete environment of the child (default: a copy of ours).
    ``timeout``: seconds; on expiry the whole process group is killed and :class:`CommandError` raised
    (``rc`` is ``None``).  ``check=True`` also raises :class:`CommandError` on a non-zero exit.
    """
    argv = [os.fspath(c) for c in cmd]
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # lets us kill the child and its descendants on timeout
        **user_popen_kwargs(user, env),
    )
    try:
        out, err = proc.communicate(input.encode() if input is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        raise CommandError(argv, None, _decode(out), _decode(err), f"timeout {timeout}s") from None
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    result = RunResult(proc.returncode, _decode(out), _decode(err))
    if check and result.rc != 0:
        raise CommandError(argv, result.rc, result.stdout, result.stderr)
    return result


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcStat(NamedTuple):
    pid: int
    state: str   # R, S, D, Z (zombie), X (dead), ...
    ppid: int
    pgrp: int


def processes() -> list[ProcStat]:
    """Every process of the machine, from /proc/<pid>/stat (those that vanish while read are skipped)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()   # after the command name, which may hold ")"
        except OSError:
            continue
        out.append(ProcStat(int(entry), fields[0], int(fields[1]), int(fields[2])))
    return out


# --------------------------------------------------------------------------------------------- files

def chown_to(path: PathLike, user: str = PG_USER, recursive: bool = False) -> None:
    """chown ``path`` (and everything under it if ``recursive``) to ``user`` and its primary group.

    A no-op unless running as root.
    """
    if os.geteuid() != 0:
        return
    uid, gid = user_ids(user)
    os.chown(path, uid, gid, follow_symlinks=False)
    if recursive and os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def make_tempdir(prefix: str = "pgvault-test-", user: str = PG_USER) -> Path:
    """Create a fresh ``tempfile.mkdtemp()`` directory owned by ``user`` (mode 0700) and return it.

    The base is ``$PGVAULT_TEST_TMPDIR`` if set, else Python's default temp dir.  Fails clearly if
    ``user`` cannot reach the new directory (e.g. TMPDIR under /root).
    """
    base = os.environ.get("PGVAULT_TEST_TMPDIR") or None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    chown_to(path, user)
    if not accessible_by(path, user, write=True):
        remove_tree(path)
        raise PermissionError(f"temp dir {path} is not accessible to user {user!r}; "
                              f"set PGVAULT_TEST_TMPDIR to a directory under a world-traversable path")
    return path


def make_dir(path: PathLike, user: str = PG_USER, mode: int = 0o700) -> Path:
    """Create ``path`` (parents too) owned by ``user``; return it as a :class:`Path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    chown_to(path, user)
    return path


def remove_tree(path: PathLike) -> None:
    """Remove a directory tree, tolerating files vanishing or read-only modes underneath."""
    def onerror(func, p, exc_info):
        if isinstance(exc_info[1], FileNotFoundError):
            return
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except FileNotFoundError:
            pass
    if os.path.lexists(path):
        shutil.rmtree(path, onerror=onerror)


def accessible_by(path: PathLike, user: str, write: bool = False, execute: bool = False) -> bool:
    """Whether ``user`` can traverse every parent of ``path`` and read it (and write/execute it).

    Evaluated from mode bits, owner and groups (no ACLs); exact when running as that user.
    """
    path = os.path.abspath(path)
    pw = pwd.getpwnam(user)
    if pw.pw_uid == os.geteuid():
        mode = os.R_OK | (os.W_OK if write else 0) | (os.X_OK if execute else 0)
        return os.access(path, mode)
    if pw.pw_uid == 0:
        return True
    groups = set(os.getgrouplist(pw.pw_name, pw.pw_gid))

    def allowed(p: str, need: int) -> bool:  # need: bitmask of 4 (r), 2 (w), 1 (x)
        try:
            st = os.stat(p)
        except OSError:
            return False
        if st.st_uid == pw.pw_uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid in groups:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        return bits & need == need

    parent = os.path.dirname(path)
    while True:
        if not allowed(parent, 1):
            return False
        if parent == os.path.dirname(parent):
            break
        parent = os.path.dirname(parent)
    need = 4 | (2 if write else 0) | (1 if execute or os.path.isdir(path) else 0)
    return allowed(path, need)


# ------------------------------------------------------------------------------------ pgvault tools

#: Every executable of the project (tools/<name>/main.cpp).
TOOL_NAMES = ("wal-push", "wal-fetch", "base-push", "pitr-prepare", "retention-prune", "archive-info", "repo-init")


def pgvault_bin(name: str) -> Path:
    """Absolute path of the pgvault executable ``name`` in the build directory ``$PGVAULT_BIN``.

    Raises a clear error if PGVAULT_BIN is unset or the executable was not built.
    """
    bindir = os.environ.get("PGVAULT_BIN")
    if not bindir:
        raise RuntimeError("PGVAULT_BIN is not set: point it to the cmake build directory "
                           "(ctest sets it), e.g. PGVAULT_BIN=/work/main/build")
    path = Path(bindir).resolve() / name
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"pgvault executable {name!r} not found at {path} "
                                f"(PGVAULT_BIN={bindir}); build it first (cmake --build)")
    return path


def install_tools(dest_dir: PathLike, names: Iterable[str] = TOOL_NAMES,
                  user: str = PG_USER) -> dict[str, Path]:
    """Copy pgvault executables from ``$PGVAULT_BIN`` into ``dest_dir`` (mode 0755).

    ``dest_dir`` must be reachable by ``user`` (e.g. under :func:`make_tempdir`); it is created if
    missing.  Returns ``{name: installed path}``.  Missing executables raise (see :func:`pgvault_bin`).
    """
    dest = Path(dest_dir)
    if not dest.exists():
        make_dir(dest, user, 0o755)
    installed = {}
    for name in names:
        src = pgvault_bin(name)
        target = dest / name
        tmp = dest / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        installed[name] = target
    if not accessible_by(dest, user):
        raise PermissionError(f"{dest} is not reachable by {user!r}")
    return installed


class PgvaultTools:
    """Paths of pgvault executables that ``user`` (postgres) can execute, resolved lazily.

    If ``$PGVAULT_BIN/<name>`` is already executable by ``user`` it is used in place; otherwise it is
    copied into ``dest_dir`` on first use.  ``tools["wal-push"]`` or ``tools.path("wal-push")`` returns
    the absolute path as a string, ready to put in archive_command.
    """

    def __init__(self, dest_dir: PathLike, user: str = PG_USER, always_copy: bool = False):
        self.dest_dir = Path(dest_dir)
        self.user = user
        self.always_copy = always_copy
        self._paths: dict[str, str] = {}

    def path(self, name: str) -> str:
        if name not in self._paths:
            src = pgvault_bin(name)
            if not self.always_copy and accessible_by(src, self.user, execute=True):
                self._paths[name] = str(src)
            else:
                self._paths[name] = str(install_tools(self.dest_dir, [name], self.user)[name])
        return self._paths[name]

    __getitem__ = path
