"""pytest fixtures shared by the integration tests.

* ``workspace``: a :class:`helpers.pg.Workspace` -- a fresh postgres-owned temp dir; every cluster
  made with ``workspace.cluster(name)`` is stopped and the directory removed when the test ends,
  pass or fail.  On failure the tail of each cluster's server log is printed.
* ``pgvault_tools``: ``pgvault_tools["wal-push"]`` is the absolute path of a pgvault executable that
  the postgres user can run (copied out of $PGVAULT_BIN if postgres cannot reach the build dir).
* ``pg_version``: the major version (int) of the PostgreSQL servers of this run: $PGVAULT_PG_VERSION,
  15 (Debian's) by default, 16 to 18 from scripts/fetch-pg.sh.  A test for some versions only is
  marked ``@pytest.mark.pg_versions(min=17)`` (or ``max=15``) and skipped on the others.

The helpers package is importable from tests as ``helpers`` (this directory is on sys.path).

What a run leaves behind: nothing. Besides the workspaces, the tools keep files where no config names a
folder: the S3 capability cache ($XDG_RUNTIME_DIR/pgvault, else ${TMPDIR:-/tmp}/pgvault-<euid>), the
local state, spools and owed queues (/var/lib/pgvault, else /var/tmp/pgvault-<uid>), restore-drill's
work directory ($TMPDIR, else /var/tmp); on a developer's machine those may be an operator's. So every
config a test writes names folders of its workspace (``helpers.repo.local_dirs``), and the run has a
private temp directory (:func:`start_run_tmpdir`): the TMPDIR of every tool and server the tests start
(XDG_RUNTIME_DIR unset) and pytest's basetemp (``tmp_path``), removed at the end
(``PGVAULT_TEST_KEEP=1`` keeps it).
"""

import os
import signal
import tempfile
from pathlib import Path

from helpers.proc import chown_to, remove_tree

import pytest

from helpers.pg import PG_VERSION, Workspace


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config):
    start_run_tmpdir(config)
    configure_harness(config)


def pytest_unconfigure(config):
    end_run_tmpdir(config)


def configure_harness(config):
    config.addinivalue_line("markers", "pg_versions(min=15, max=None): run only on these PostgreSQL "
                                       "major versions (PGVAULT_PG_VERSION)")
    # SIGTERM (e.g. from a CI runner) would end Python without running fixture teardowns or atexit
    # handlers; turn it into KeyboardInterrupt so the servers are stopped and temp dirs removed.
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, on_sigterm)
    # The tools are quiet (warnings only) when stderr is not a terminal; the tests read their info lines.
    # test_operations.py checks the quiet default with this variable removed.
    os.environ.setdefault("PGVAULT_LOG_LEVEL", "info")


# --- the run's own temp directory, and the tools' default locations left alone ------------------------

def start_run_tmpdir(config):
    """A fresh directory for this pytest process (ctest runs two at a time: each has its own), owned by
    the PostgreSQL user (the servers and the tools they run write there too), short (unix socket paths):
    $TMPDIR of every child from now on, and pytest's basetemp unless --basetemp names one."""
    python_tmp = tempfile.gettempdir()  # fixed from now on: Python's own temp files stay there
    base = os.environ.get("PGVAULT_TEST_TMPDIR") or python_tmp
    tmp = Path(tempfile.mkdtemp(prefix="pgvault-run-", dir=base))
    chown_to(tmp)
    config.pgvault_run_tmpdir = tmp
    config.pgvault_saved_env = {k: os.environ.get(k) for k in ("TMPDIR", "XDG_RUNTIME_DIR")}
    os.environ["TMPDIR"] = str(tmp)
    os.environ.pop("XDG_RUNTIME_DIR", None)
    if config.option.basetemp is None:
        config.option.basetemp = str(tmp / "pytest")


def end_run_tmpdir(config):
    tmp = getattr(config, "pgvault_run_tmpdir", None)
    if tmp is None:
        return
    for key, value in config.pgvault_saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if not os.environ.get("PGVAULT_TEST_KEEP"):
        remove_tree(tmp)


def pytest_report_header(config):
    return f"PostgreSQL {PG_VERSION} servers (PGVAULT_PG_VERSION)"


def pytest_runtest_setup(item):
    for mark in item.iter_markers("pg_versions"):
        low, high = mark.kwargs.get("min", 15), mark.kwargs.get("max")
        if PG_VERSION < low or (high is not None and PG_VERSION > high):
            pytest.skip(f"needs PostgreSQL {low} to {high or 'newest'}, this run has {PG_VERSION}")


@pytest.fixture(scope="session")
def pg_version():
    """The major version of the PostgreSQL servers of this run (PGVAULT_PG_VERSION, default 15)."""
    return PG_VERSION


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def workspace(request):
    """A :class:`helpers.pg.Workspace`, closed (servers stopped, dir removed) after the test."""
    with Workspace() as ws:
        yield ws
        failed = any(getattr(request.node, f"rep_{when}", None) is not None
                     and getattr(request.node, f"rep_{when}").failed for when in ("setup", "call"))
        if failed:
            for cluster in ws.clusters:
                print(f"\n===== server log {cluster.log_path} (last lines) =====\n"
                      f"{cluster.log_tail(80)}")


@pytest.fixture
def pgvault_tools(workspace):
    """Lazily installed pgvault executables: ``pgvault_tools["wal-push"]`` -> path string."""
    return workspace.tools


# --- repositories ------------------------------------------------------------------------------------
# Every test that takes `repo` runs once per backend: the local directory and S3 (Swift's s3api).

BACKENDS = ["fs", "s3"]


@pytest.fixture(scope="session")
def s3_server():
    """One OpenStack Swift (s3api + tempauth) on 127.0.0.1 for the whole test file, stopped by PID."""
    from helpers.swift import SwiftS3
    with SwiftS3() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def repo(request, workspace):
    from helpers.repo import Repo
    if request.param == "s3":
        return Repo(workspace, "s3", s3=request.getfixturevalue("s3_server"))
    return Repo(workspace, "fs")


# --- real WAL to push by hand, and a directory that looks like one in recovery -----------------------

@pytest.fixture
def primary(workspace):
    """A running primary archiving nowhere ('true'), with a few real segments in pg_wal to push by hand."""
    pg = workspace.cluster("src")
    pg.initdb()
    pg.configure(wal_level="replica", archive_mode="on", archive_command="/bin/true", wal_keep_size="1GB")
    pg.start()
    pg.psql("CREATE TABLE t(x int)")
    names = []
    for _ in range(3):
        pg.psql("INSERT INTO t SELECT generate_series(1, 1000)")
        names.append(pg.switch_wal())
    pg.psql("CHECKPOINT")
    pg.segments = names
    return pg


def push(pg, repo, path, cwd=None, config=None):
    return pg.run([repo.tool("wal-push"), "--config", str(config or repo.config_path), str(path)],
                  cwd=cwd or pg.datadir)


def fetch(pg, repo, name, dest, cwd, config=None):
    return pg.run([repo.tool("wal-fetch"), "--config", str(config or repo.config_path), name, str(dest)], cwd=cwd)


@pytest.fixture
def recovery_dir(workspace):
    """A directory that looks like a data directory in archive recovery (wal-fetch's cwd)."""
    d = workspace.mkdir("recovering", mode=0o700)
    (d / "pg_wal").mkdir()
    (d / "recovery.signal").write_text("")
    chown_to(d, recursive=True)
    return d

