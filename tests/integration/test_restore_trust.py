"""pitr-prepare trusts nothing it reads from the repository, and a restore stays out of production's way.

1. A manifest whose paths lead outside the data directory (`../../../../outside/x`, an absolute path, a
   `..` directory entry) is corruption: pitr-prepare exits 6 naming the path and the manifest, nothing is
   written anywhere, and archive-info --verify flags the manifest.
2. pitr-prepare --dry-run refuses what the real run refuses (a running server's data directory).
3. By default the restored server does not archive (archive_mode = off in postgresql.auto.conf): its
   new timeline never reaches the repository it came from; with --archive-mode preserve it does.

The backend does not matter here (the manifest is read the same way from both), so these run on fs only.
The manifests are edited in place: the repository stores them uncompressed and unencrypted, and the edit
is re-encoded as a plain object (docs/FORMAT.md, section 1).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time

import pytest

from helpers.pitr import archive_info, base_push, pitr_prepare, start_primary

EXIT_USAGE = 2
EXIT_CORRUPTION = 6

HEADER = b"PGVO" + bytes([1, 0, 0, 0]) + bytes(24)  # version 1, no compression, no encryption


def plain_object(data: bytes) -> bytes:
    """A stored object holding `data` without compression or encryption (docs/FORMAT.md 1.1, 1.5)."""
    return HEADER + data + hashlib.sha256(data).digest() + struct.pack(">Q", len(data)) + bytes(4) + b"PGVT"


def read_manifest(repo, label: str) -> dict:
    raw = repo.read(f"backups/{label}/manifest.json")
    assert raw[:4] == b"PGVO" and raw[4] in (1, 2) and raw[5:7] == b"\0\0", \
        "the test repository must store plain objects (no compression, no encryption)"
    return json.loads(raw[32:-48])


def write_manifest(repo, label: str, manifest: dict) -> None:
    repo.write(f"backups/{label}/manifest.json", plain_object(json.dumps(manifest).encode()))


@pytest.mark.parametrize("repo", ["fs"], indirect=True)
def test_manifest_paths_outside_the_data_directory_are_refused(workspace, repo):
    repo.update({"compression": {"method": "none"}})
    pg = start_primary(workspace, repo)
    label = base_push(pg, repo)["label"]
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    original = read_manifest(repo, label)
    manifest_key = f"backups/{label}/manifest.json"

    target = workspace.path("a", "b", "c", "data")
    outside_file = workspace.path("outside", "x")          # target/../../../../outside/x
    outside_dir = workspace.path("a", "b", "c", "outside-dir")  # target/../outside-dir
    absolute = f"/tmp/pgvault-trust-{int(time.time() * 1000)}/x"

    def edited(kind: str) -> dict:
        m = json.loads(json.dumps(original))
        victim = next(f for f in m["files"] if f["path"] == "PG_VERSION")
        if kind == "traversal":
            victim["path"] = "../../../../outside/x"
        elif kind == "absolute":
            victim["path"] = absolute
        else:
            m["directories"].append({"path": "../outside-dir", "tablespace": 0, "mode": 0o700})
        return m

    for kind, shown in (("traversal", "../../../../outside/x"), ("absolute", absolute),
                        ("directory", "../outside-dir")):
        write_manifest(repo, label, edited(kind))
        res = pitr_prepare(repo, target)
        assert res.rc == EXIT_CORRUPTION, f"{kind}: {res.rc} {res.stderr}"
        errors = [line for line in res.stderr.splitlines() if shown in line]
        assert errors and manifest_key in errors[0], res.stderr
        for p in (target, outside_file, outside_dir, workspace.path("a", "b", "c", "data", "tmp")):
            assert not p.exists(), f"{kind}: {p} was written"
        assert not workspace.path("outside").exists()
        assert not os.path.exists(absolute) and not os.path.exists(os.path.dirname(absolute))

        res = archive_info(repo, "--verify")
        assert res.rc == 1, res.stdout + res.stderr
        assert f"PROBLEM corruption {manifest_key}" in res.stdout and shown in res.stdout, res.stdout

    # The untouched manifest restores (the edits above were the only problem).
    write_manifest(repo, label, original)
    res = pitr_prepare(repo, target, "--dry-run")
    assert res.rc == 0, res.stderr


@pytest.mark.parametrize("repo", ["fs"], indirect=True)
def test_archive_mode_off_by_default_and_preserve_on_request(workspace, repo):
    pg = start_primary(workspace, repo)
    base_push(pg, repo)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)

    # --dry-run makes the data-directory checks of a real run: a running server's directory is refused.
    res = pitr_prepare(repo, pg.datadir, "--dry-run", "--force")
    assert res.rc == EXIT_USAGE, res.stdout + res.stderr
    assert "running server" in res.stderr and "would restore" not in res.stdout, res.stdout + res.stderr
    res = pitr_prepare(repo, workspace.mkdir("empty-target"), "--dry-run")
    assert res.rc == 0 and "would restore" in res.stdout, res.stderr
    pg.stop()

    def restore_promote_and_write(name: str, *args: str):
        cluster = workspace.cluster(name)
        res = pitr_prepare(repo, cluster.datadir, "--json", *args)
        assert res.rc == 0, res.stderr
        summary = json.loads(res.stdout)
        assert "archive_mode" in res.stderr  # the summary line says what the restore does
        cluster.start(wait=False)  # inherits the primary's archive_command (wal-push into `repo`)
        cluster.wait_for_recovery_end()
        cluster.psql(f"CREATE TABLE written_on_{name.replace('-', '_')} AS SELECT 1 AS x")
        return cluster, summary, cluster.switch_wal()

    def timeline_objects(tli: int) -> list[str]:
        return [k for k in repo.keys("wal/") if k.rsplit("/", 1)[-1].startswith(f"{tli:08X}")]

    # Default: archive_mode off. The promotion (timeline 2) and its WAL never reach the repository.
    off, summary, last = restore_promote_and_write("default-off")
    assert summary["archive_mode"] == "off"
    assert off.scalar("SHOW archive_mode") == "off"
    time.sleep(2)
    assert timeline_objects(2) == [], timeline_objects(2)
    off.stop()

    # --archive-mode preserve: the restored server archives as the primary did.
    kept, summary, last = restore_promote_and_write("preserved", "--archive-mode", "preserve")
    assert summary["archive_mode"] == "preserve"
    assert kept.scalar("SHOW archive_mode") == "on"
    kept.wait_archived(last, fail_on_error=True)
    names = [k.rsplit("/", 1)[-1] for k in timeline_objects(2)]
    assert "00000002.history" in names and last in names, names
    kept.stop()
