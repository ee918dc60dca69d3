#!/usr/bin/env bash
# pgvault benchmark: pgvault side by side with pgBackRest, cp/zstd floors and pg_basebackup.
#   tests/bench/run.sh [--quick] [--reps N] [--segments N] [--scale N] [--only wal|sustained|recovery|multipart|backup|incremental|copy|scale|drain]
# Installs what it compares against (PGVAULT_BENCH=1 scripts/setup.sh: pgbackrest, hyperfine, time),
# builds the Release tree (scripts/build.sh release) and runs tests/bench/bench.py with Debian's python3.
# Results: tests/bench/results/latest.json and latest.md. Not part of ctest.
set -euo pipefail
cd "$(dirname "$0")/../.."
PGVAULT_BENCH=1 scripts/setup.sh
if ! scripts/build.sh release; then
  # The shared tree may hold someone's half-finished change; benchmark what is already built.
  if [ -x build/release/wal-push ] && [ -x build/release/wal-fetch ]; then
    echo "run.sh: WARNING: the Release build failed; benchmarking the executables already in build/release" >&2
  else
    echo "run.sh: the Release build failed and build/release has no wal-push/wal-fetch" >&2
    exit 1
  fi
fi
export PGVAULT_BIN="${PGVAULT_BIN:-$PWD/build/release}"
exec /usr/bin/python3 tests/bench/bench.py "$@"
