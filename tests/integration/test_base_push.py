"""base-push against a real PostgreSQL 15, on every repository backend.

The backups are checked by restoring them here, without pitr-prepare: the test decodes the manifest and
every bundle through the test-only ``pgvault-cat`` (tests/tools/pgvault-cat), writes the files, points
the tablespace at a new directory through tablespace_map, recovers through wal-fetch and compares the
data exactly. Failure cases: interrupt, archive_mode off, wal_level minimal, another cluster's
repository, a role without REPLICATION, an unreachable server.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers.pg import free_port
from helpers.pitr import start_primary
from helpers.proc import PG_USER, chown_to, user_popen_kwargs
from helpers.repo import Repo, wal_key

LABEL_RE = re.compile(r"^\d{8}T\d{6}Z-F$")


# --------------------------------------------------------------------------------------------- helpers

def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected), byte at a time from its definition: independent of pgvault's
    (about 15 MB/s, so only for small files)."""
    crc, table = 0xFFFFFFFF, _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283 and crc32c(b"") == 0

#: Files up to this size get their manifest CRC-32C recomputed by crc32c() above.
CRC_CHECK_MAX = 1 << 20


def cat(repo: Repo, key: str) -> bytes:
    """A decoded (and verified) repository object."""
    res = subprocess.run([repo.tool("pgvault-cat"), "--config", str(repo.config_path), key],
                         capture_output=True, timeout=300)
    assert res.returncode == 0, f"pgvault-cat {key}: {res.stderr.decode(errors='replace')}"
    return res.stdout


def manifest_of(repo: Repo, label: str) -> dict:
    return json.loads(cat(repo, f"backups/{label}/manifest.json"))


def backup_labels(repo: Repo) -> set[str]:
    return {k.split("/")[1] for k in repo.keys("backups/")}


def base_push(pg, repo: Repo, *args: str, timeout: float = 600):
    return pg.run(repo.cmd("base-push", "--conninfo", pg.conninfo, *args), timeout=timeout)


def pgbench_state(pg) -> tuple[str, ...]:
    return (pg.scalar("SELECT count(*) FROM pgbench_accounts"),
            pg.scalar("SELECT sum(abalance) FROM pgbench_accounts"),
            pg.scalar("SELECT count(*) FROM pgbench_history"),
            pg.scalar("SELECT count(*) || '/' || sum(id) || '/' || md5(string_agg(v, ',' ORDER BY id)) FROM t_ts"))


def restore_backup(repo: Repo, label: str, datadir: Path, tablespace_dirs: dict[int, Path]) -> dict:
    """Writes backup `label` into `datadir` (tablespace OID -> new directory); returns the manifest."""
    m = manifest_of(repo, label)
    bundles = {}
    for b in m["bundles"]:
        data = cat(repo, f"backups/{label}/bundle-{b['index']:06d}")
        assert len(data) == b["plain_size"] and hashlib.sha256(data).hexdigest() == b["sha256"]
        bundles[b["index"]] = data
    datadir.mkdir(mode=0o700)

    def base(ts: int) -> Path:
        return datadir if ts == 0 else tablespace_dirs[ts]
    for d in m["directories"]:
        p = base(d["tablespace"]) / d["path"]
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, d["mode"])
    for f in m["files"]:
        data = bundles[f["bundle"]][f["offset"]:f["offset"] + f["size"]]
        # Our per-file checksum: CRC-32C as 8 hex digits, the value most significant digit first.
        assert "sha256" not in f and re.fullmatch(r"[0-9a-f]{8}", f["crc32c"]), f
        if f["size"] <= CRC_CHECK_MAX:
            assert f["crc32c"] == f"{crc32c(data):08x}", f["path"]
        p = base(f["tablespace"]) / f["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, f["mode"])
    # PostgreSQL recreates pg_tblspc/<oid> links from tablespace_map at startup: point them elsewhere.
    if m["tablespace_map"]:
        lines = []
        for line in m["tablespace_map"].splitlines():
            oid, _, _ = line.partition(" ")
            lines.append(f"{oid} {tablespace_dirs[int(oid)]}")
        (datadir / "tablespace_map").write_text("\n".join(lines) + "\n")
    for d in [datadir, *tablespace_dirs.values()]:
        chown_to(d, recursive=True)
    return m


# ---------------------------------------------------------------------------------------------------
# The full cycle: base-push, more writes, restore + archive recovery, exact data.
# ---------------------------------------------------------------------------------------------------

def test_base_push_restores_exactly_with_tablespace(workspace, repo, pg_version):
    # Small bundles: many bundles, and the big relation files get bundles of their own.
    repo.update({"backup": {"bundle_size": "1MiB", "parallel": 2}})
    pg = start_primary(workspace, repo)
    tsdir = workspace.mkdir("tblspc")
    pg.psql(f"CREATE TABLESPACE ts LOCATION '{tsdir}'")
    pg.psql("CREATE TABLE t_ts (id int, v text) TABLESPACE ts; "
            "INSERT INTO t_ts SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
    ts_oid = int(pg.scalar("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'"))
    pg.pgbench_init(scale=5)
    pg.pgbench(["-T", "2", "-c", "2"])

    res = base_push(pg, repo, "--json", "--checkpoint", "fast")
    assert res.rc == 0, res.stderr
    summary = json.loads(res.stdout)
    label = summary["label"]
    assert LABEL_RE.match(label), label
    assert re.search(rf"backup {label} complete: .* stored .* bundles", res.stderr), res.stderr
    assert summary["server_manifest_verified"] is True and summary["tablespaces"] == 1

    # Writes after the backup: recovery must replay them from the archive.
    pg.pgbench(["-T", "2", "-c", "2"])
    pg.psql("INSERT INTO t_ts SELECT g, 'after' FROM generate_series(20001, 21000) g")
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    expected = pgbench_state(pg)

    m = manifest_of(repo, label)
    sysid = pg.controldata()["Database system identifier"]
    assert m["label"] == label and m["type"] == "full" and m["timeline"] == 1
    assert m["system_identifier"] == sysid and m["pg_version"] == pg_version
    assert m["server_manifest_verified"] is True
    assert m["start_wal"] <= m["stop_wal"] and m["start_wal"].startswith("00000001")
    assert m["start_lsn"] in m["backup_label"] and "START WAL LOCATION" in m["backup_label"]
    assert m["tablespaces"] == [{"oid": ts_oid, "location": str(tsdir)}]
    assert m["tablespace_map"].strip() == f"{ts_oid} {tsdir}"
    paths = {(f["tablespace"], f["path"]) for f in m["files"]}
    assert {(0, "backup_label"), (0, "tablespace_map"), (0, "global/pg_control"), (0, "PG_VERSION")} <= paths
    assert any(ts == ts_oid for ts, _ in paths)
    assert (0, "postmaster.pid") not in paths
    assert any(d["path"] == "pg_wal" for d in m["directories"])
    assert m["total_bytes"] == sum(f["size"] for f in m["files"]) == summary["total_bytes"]
    assert m["stored_bytes"] == sum(b["stored_size"] for b in m["bundles"])
    assert len(m["bundles"]) > 5
    assert all(b["plain_size"] <= 1 << 20 for b in m["bundles"]
               if len([f for f in m["files"] if f["bundle"] == b["index"]]) > 1)
    assert repo.keys(wal_key(m["stop_wal"]))  # the stop segment was archived before the manifest
    info = pg.run(repo.cmd("archive-info", "--json"))
    assert info.rc == 0 and label in info.stdout, info.stderr

    if pg_version == 15:  # Debian's pg_basebackup, 15's, refuses newer servers
        check_manifest_crc_as_server_writes_it(workspace, pg, m)

    restored = workspace.cluster("restored")
    newts = workspace.mkdir("tblspc-restored")
    restore_backup(repo, label, restored.datadir, {ts_oid: newts})
    restored.configure(archive_mode="off")
    restored.enable_recovery({"restore_command": repo.restore_command})
    restored.start()
    restored.wait_for_recovery_end(timeout=300)
    assert pgbench_state(restored) == expected
    assert os.readlink(restored.datadir / "pg_tblspc" / str(ts_oid)) == str(newts)


def check_manifest_crc_as_server_writes_it(workspace, pg, m):
    # What the server itself writes as a CRC32C backup_manifest checksum (a pg_basebackup of the same
    # server, which base-push's check relies on): the 4 bytes of the value in the server's memory order.
    bb = pg.basebackup(workspace.mkdir("pg_basebackup"), ["-F", "t", "--manifest-checksums=CRC32C"])
    server_files = {e["Path"]: e for e in json.loads((bb / "backup_manifest").read_text())["Files"] if "Path" in e}
    checked = 0
    with tarfile.open(bb / "base.tar") as tar:
        for member in tar:
            entry = server_files.get(member.name)
            if not member.isfile() or entry is None or member.size > CRC_CHECK_MAX:
                continue
            assert entry["Checksum-Algorithm"] == "CRC32C", entry
            value = crc32c(tar.extractfile(member).read())
            assert entry["Checksum"] == value.to_bytes(4, sys.byteorder).hex(), member.name
            checked += 1
    assert checked > 100, checked
    # The same value as ours (most significant digit first) for a file both backups have unchanged.
    ours = {f["path"]: f["crc32c"] for f in m["files"] if f["tablespace"] == 0}
    assert ours["PG_VERSION"] == f"{crc32c(b'15' + bytes([10])):08x}"
    assert int(ours["PG_VERSION"], 16).to_bytes(4, sys.byteorder).hex() == server_files["PG_VERSION"]["Checksum"]


# ---------------------------------------------------------------------------------------------------
# Failures: each leaves no visible backup and says why.
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_base_push_leaves_no_backup(workspace, repo, sig):
    # Slow on purpose (one worker, zstd -19, small bundles) so the signal lands mid-stream.
    repo.update({"backup": {"bundle_size": "1MiB", "parallel": 1}, "compression": {"level": 19}})
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=10)
    cmd = repo.cmd("base-push", "--conninfo", pg.conninfo)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=pg.workdir,
                            **user_popen_kwargs(PG_USER, pg.pg_env()))
    try:
        deadline = time.monotonic() + 120
        while not [k for k in repo.keys("backups/") if "/bundle-" in k]:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "no bundle appeared"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 130, err
    assert f"interrupted by {sig.name}" in err
    assert not [k for k in repo.keys("backups/") if k.endswith("manifest.json")]
    assert repo.keys("backups/") == [], "uploaded bundles were not deleted"
    # The server-side backup was aborted: no backup in progress, and a new one succeeds.
    for _ in range(100):
        if pg.scalar("SELECT count(*) FROM pg_stat_progress_basebackup") == "0":
            break
        time.sleep(0.1)
    assert pg.scalar("SELECT count(*) FROM pg_stat_progress_basebackup") == "0"
    repo.update({"compression": {"level": 1}})
    res = base_push(pg, repo)
    assert res.rc == 0, res.stderr
    assert len(backup_labels(repo)) == 1


def test_archive_mode_off_is_refused(workspace, repo):
    pg = workspace.cluster("noarchive")
    pg.initdb()
    pg.configure(wal_level="replica", archive_mode="off")
    pg.start()
    res = base_push(pg, repo)
    assert res.rc == 2, res.stderr
    assert "archive_mode = off" in res.stderr
    assert repo.keys("backups/") == []


def test_empty_archive_command_is_refused(workspace, repo):
    pg = start_primary(workspace, repo, name="noarchivecmd", archive_command="")
    res = base_push(pg, repo)
    assert res.rc == 2, res.stderr
    assert "archives nothing" in res.stderr
    assert repo.keys("backups/") == []


def test_wal_level_minimal_is_refused(workspace, repo):
    pg = workspace.cluster("minimal")
    pg.initdb()
    pg.configure(wal_level="minimal", max_wal_senders=0, archive_mode="off")
    pg.start()
    res = base_push(pg, repo)
    assert res.rc == 2, res.stderr
    assert "max_wal_senders" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_repository_of_another_cluster_is_refused(workspace, repo):
    a = start_primary(workspace, repo, name="a")
    a.wait_archived(a.switch_wal(), fail_on_error=True)  # the repository now belongs to cluster a
    b = start_primary(workspace, repo, name="b", archive_command="/bin/true")
    res = base_push(b, repo)
    assert res.rc == 4, res.stderr
    assert b.controldata()["Database system identifier"] in res.stderr
    assert a.controldata()["Database system identifier"] in res.stderr
    assert repo.keys("backups/") == []


def test_role_without_replication_is_refused_with_it_succeeds(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.psql("CREATE ROLE plain LOGIN")
    conninfo = f"host={pg.sockdir} port={pg.port} user=plain dbname=postgres"
    res = pg.run(repo.cmd("base-push", "--conninfo", conninfo))
    assert res.rc == 2, res.stderr
    assert "REPLICATION" in res.stderr
    assert repo.keys("backups/") == []
    # A REPLICATION role that is not a superuser is all base-push needs.
    pg.psql("ALTER ROLE plain REPLICATION")
    res = pg.run(repo.cmd("base-push", "--conninfo", conninfo, "--json"))
    assert res.rc == 0, res.stderr
    assert json.loads(res.stdout)["server_manifest_verified"] is True


@pytest.mark.parametrize("transport", ["tcp", "unix-socket"])
def test_unreachable_server_fails_cleanly(workspace, repo, transport):
    # A server that is down is a server failure (exit 1) whatever the transport: libpq fails a Unix
    # socket at once, before any polling, which once read as a bad connection string (exit 2).
    pg = workspace.cluster("never-started")
    host = "127.0.0.1" if transport == "tcp" else str(workspace.mkdir("no-server-here"))
    conninfo = f"host={host} port={free_port()} user=postgres connect_timeout=5"
    t0 = time.monotonic()
    res = pg.run(repo.cmd("base-push", "--conninfo", conninfo), cwd=workspace.root)
    assert res.rc == 1, res.stderr
    assert "cannot connect to PostgreSQL" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert time.monotonic() - t0 < 30
    assert repo.keys("backups/") == []


@pytest.mark.parametrize("conninfo", ["host=/tmp no_such_keyword=1", "host=/tmp sslmode=sometimes",
                                      "postgresql://[broken"])
def test_bad_connection_string_is_a_configuration_error(workspace, repo, conninfo):
    pg = workspace.cluster("never-started")
    res = pg.run(repo.cmd("base-push", "--conninfo", conninfo), cwd=workspace.root)
    assert res.rc == 2, res.stderr
    assert "bad connection string" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
