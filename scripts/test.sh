#!/usr/bin/env bash
# Sets up, builds and runs every test: unit tests and integration tests (real PostgreSQL 15, real S3
# server), first in the sanitizer build (ASan + UBSan), then in the Release build.
# Usage: scripts/test.sh [asan|release ...]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(asan release)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for kind in "${kinds[@]}"; do
  echo "=== $kind build ==="
  scripts/build.sh "$kind"
  echo "=== $kind tests ==="
  (cd "build/$kind" && ctest --output-on-failure --timeout 1800 -j1) || status=1
done
exit $status
