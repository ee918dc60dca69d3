"""Timeline history read as PostgreSQL reads it.

A point-in-time recovery that follows timeline 2 (recovery_target_timeline = latest) back to a restore
point on timeline 1 that lies BEFORE timeline 2's switch point promotes onto timeline 3, whose history
PostgreSQL writes with switch points that do not increase:

    1   <switch to 2>   ...
    2   <the restore point, before that switch>   ...

(PostgreSQL's own recovery tests produce `1 0/3018CB0` then `2 0/3018C48`.) Timeline 2 covers no WAL on
timeline 3's path. PostgreSQL follows that history; so must archive-info --verify and pitr-prepare.
The backend does not matter (history files are read the same way from both): fs only.
"""

from __future__ import annotations

import subprocess

import pytest

from helpers.pitr import archive_info, base_push, create_marks, db_state, mark, recover, start_primary


def lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def history_lines(repo, tli: int) -> list[tuple[int, int]]:
    key = f"wal/{tli:08X}.history"
    res = subprocess.run([repo.tool("pgvault-cat"), "--config", str(repo.config_path), key],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"pgvault-cat {key}: {res.stderr}"
    out = []
    for line in res.stdout.splitlines():
        if line.strip() and not line.startswith("#"):
            parent, point = line.split("\t")[:2]
            out.append((int(parent), lsn(point)))
    return out


@pytest.mark.parametrize("repo", ["fs"], indirect=True)
def test_recovers_onto_a_timeline_whose_switch_points_do_not_increase(workspace, repo):
    pg = start_primary(workspace, repo)
    pg.pgbench_init(scale=1)
    create_marks(pg)
    base_push(pg, repo)
    mark(pg, "a", 1)
    pg.psql("SELECT pg_create_restore_point('before_switch')")
    mark(pg, "b", 2)  # after the restore point: must not be on timeline 3
    pg.psql("SELECT pg_create_restore_point('switch')")
    mark(pg, "c", 3)
    pg.wait_archived(pg.switch_wal(), fail_on_error=True)
    pg.stop()

    # Timeline 2 branches off timeline 1 at 'switch' and archives into the repository.
    tl2, s2 = recover(workspace, repo, "tl2", "--target-name", "switch", archive=True)
    assert s2["target_timeline"] == 1
    mark(tl2, "tl2", 4)
    tl2.wait_archived(tl2.switch_wal(), fail_on_error=True)
    tl2.stop()

    # Following timeline 2 (latest) back to 'before_switch', which lies before timeline 2's switch point:
    # PostgreSQL stops on timeline 1's part of that history and promotes onto timeline 3.
    tl3, s3 = recover(workspace, repo, "tl3", "--target-name", "before_switch", archive=True)
    assert s3["target_timeline"] == 2
    assert tl3.scalar("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)") == "00000003"
    mark(tl3, "tl3", 5)
    state_on_tl3 = db_state(tl3)
    tl3.psql("SELECT pg_create_restore_point('on_tl3')")
    mark(tl3, "tl3-later", 6)
    tl3.wait_archived(tl3.switch_wal(), fail_on_error=True)
    tl3.stop()

    h3 = history_lines(repo, 3)
    assert [p for p, _ in h3] == [1, 2]
    assert h3[1][1] < h3[0][1], f"switch points should not increase: {h3}"

    res = archive_info(repo, "--verify")
    assert res.rc == 0, res.stdout + res.stderr
    assert "0 problems" in res.stdout

    restored, s = recover(workspace, repo, "onto-tl3", "--target-name", "on_tl3")
    assert s["target_timeline"] == 3 and s["backup_timeline"] == 1
    assert db_state(restored) == state_on_tl3
    assert db_state(restored)[2] == "a,tl3"
    restored.stop()
