"""Every tool: --help and --version exit 0; an unknown flag is one clear line and a non-zero exit that
respects the tool's contract (wal-push never above 125; wal-fetch aborts archive recovery)."""

import subprocess

import pytest

from helpers.proc import pgvault_bin

TOOLS = ["wal-push", "wal-fetch", "base-push", "pitr-prepare", "retention-prune", "archive-info", "repo-init",
         "restore-drill"]


@pytest.mark.parametrize("tool", TOOLS)
def test_help_version_and_bad_flag(tool, tmp_path):
    exe = str(pgvault_bin(tool))
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Usage:" in r.stdout and "--config" in r.stdout, r
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("pgvault "), r
    r = subprocess.run([exe, "--no-such-flag"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert r.returncode != 0
    assert 0 < r.returncode <= 125 or (tool == "wal-fetch" and r.returncode == 200), r.returncode
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "--help" in lines[0], r.stderr
