"""Self-test of the integration-test harness (helpers/ and conftest.py).

Needs PostgreSQL (15 to 18, PGVAULT_PG_VERSION) but no pgvault executable: archiving uses plain ``cp``.
"""

import os
import pwd
import stat
import time

import pytest

from helpers.pg import PgCluster, Workspace
from helpers.proc import (PG_USER, CommandError, PgvaultTools, accessible_by, make_tempdir,
                          pid_alive, processes, remove_tree, run)


def _children(pid):
    """Pids of the direct children of ``pid``."""
    return [p.pid for p in processes() if p.ppid == pid]


def _bank_totals(pg):
    return pg.query("SELECT count(*), sum(abalance) FROM pgbench_accounts")[0]


def test_archive_basebackup_and_archive_recovery(workspace):
    archive = workspace.mkdir("archive")
    primary = workspace.cluster("primary").initdb(checksums=True)
    primary.configure(wal_level="replica", max_wal_senders=4, archive_mode="on",
                      archive_command=f"cp %p {archive}/%f")
    primary.start()
    assert primary.scalar("SHOW data_checksums") == "on"
    assert primary.scalar("SHOW archive_mode") == "on"

    primary.pgbench_init(scale=5)
    # The base backup is taken before the load, so the load can only come back through the archive.
    restored = workspace.cluster("restored")
    primary.basebackup(restored.datadir)
    primary.pgbench(["-T", "5", "-c", "2", "-j", "2"])
    expected = _bank_totals(primary)
    assert expected[0] == "500000" and expected[1] != "0"

    last = primary.switch_wal()
    stats = primary.wait_archived(last, timeout=60, fail_on_error=True)
    assert int(stats["archived_count"]) > 0 and stats["failed_count"] == "0"
    assert (archive / last).is_file()
    assert primary.current_wal_file() >= last

    restored.enable_recovery({"restore_command": f"cp {archive}/%f %p", "archive_mode": "off"})
    assert (restored.datadir / "recovery.signal").exists()
    restored.start(wait=False)
    restored.wait_for_recovery_end(timeout=120)
    assert restored.port != primary.port
    assert _bank_totals(restored) == expected
    log = restored.log_text()
    assert f'restored log file "{last}" from archive' in log
    assert "archive recovery complete" in log
    assert restored.controldata()["Latest checkpoint's TimeLineID"] == "2"


def test_switch_that_did_nothing_names_the_last_closed_segment(workspace):
    # pg_walfile_name() of an LSN on a segment boundary names the segment before it up to 16 and the
    # one starting there from 17 on: switch_wal() and current_wal_file() mean the closed one on all.
    archive = workspace.mkdir("archive")
    pg = workspace.cluster("pg").initdb()
    assert pg.controldata()["Data page checksum version"] == "0"  # off unless asked, 18 too
    pg.configure(wal_level="replica", archive_mode="on", archive_command=f"cp %p {archive}/%f")
    pg.start()
    assert pg.scalar("SHOW data_checksums") == "off"
    pg.psql("CREATE TABLE t(x int); INSERT INTO t VALUES (1)")
    closed = pg.switch_wal()
    assert pg.current_wal_file() == closed
    assert pg.switch_wal() == closed  # nothing to switch: still the segment closed last
    pg.wait_archived(closed, timeout=30, fail_on_error=True)
    assert (archive / closed).is_file()


def test_stop_by_pid_and_workspace_cleanup_on_failure():
    with pytest.raises(RuntimeError, match="boom"):
        with Workspace() as ws:
            root = ws.root
            assert root.stat().st_uid == pwd.getpwnam(PG_USER).pw_uid
            assert accessible_by(root, PG_USER, write=True)
            pg = ws.cluster("c").initdb()
            pg.start()
            pid = pg.pid
            assert pid is not None and pid_alive(pid)
            kids = _children(pid)
            assert kids, "a running postmaster has child processes"
            mark = pg.log_size()
            assert pg.stop() == 0
            assert not pid_alive(pid) and not any(pid_alive(k) for k in kids)
            assert pg.pid is None and not pg.is_running()
            assert "database system is shut down" in pg.log_text(since=mark)

            # A crash (SIGKILL to the whole process group), then crash recovery on the same port.
            port = pg.port
            pg.start()
            pid = pg.pid
            pg.psql("CREATE TABLE t AS SELECT 1 AS x")
            pg.stop(mode="kill")
            assert not pid_alive(pid)
            pg.start()
            assert pg.port == port and pg.scalar("SELECT x FROM t") == "1"
            pg.wait_for_log("database system was interrupted|was not properly shut down", timeout=5)
            pid = pg.pid
            raise RuntimeError("boom")  # the workspace must still stop the server and clean up
    assert not pid_alive(pid)
    assert not root.exists()


def test_start_failure_reports_log_tail(workspace):
    pg = workspace.cluster("bad").initdb()
    pg.configure(shared_buffers="not-a-size")
    with pytest.raises(Exception, match="shared_buffers"):
        pg.start(timeout=20)
    assert not pg.is_running()


def test_run_timeout_and_user():
    start = time.monotonic()
    with pytest.raises(CommandError, match="timed out"):
        run(["sleep", "30"], timeout=1)
    assert time.monotonic() - start < 10
    rc, out, err = run(["id", "-un"], user=PG_USER)
    assert (rc, out.strip()) == (0, PG_USER)


def test_tools_copied_when_build_dir_unreachable(monkeypatch):
    build = make_tempdir("pgvault-fakebuild-", user="root") if os.geteuid() == 0 else make_tempdir()
    dest = make_tempdir()
    try:
        tool = build / "wal-push"
        tool.write_text("#!/bin/sh\necho pushed \"$@\"\n")
        tool.chmod(0o755)
        os.chmod(build, 0o700)
        monkeypatch.setenv("PGVAULT_BIN", str(build))
        path = PgvaultTools(dest / "bin")["wal-push"]
        if os.geteuid() == 0:
            assert path == str(dest / "bin" / "wal-push")  # root-only build dir: copied
        assert os.stat(path).st_mode & stat.S_IXOTH
        assert run([path, "x"], user=PG_USER, cwd=dest).stdout == "pushed x\n"
        monkeypatch.setenv("PGVAULT_BIN", str(dest / "nowhere"))
        with pytest.raises(FileNotFoundError, match="archive-info"):
            PgvaultTools(dest / "bin2")["archive-info"]
    finally:
        remove_tree(build)
        remove_tree(dest)
