#!/usr/bin/env bash
# Sets up, builds and runs every test: unit tests and integration tests (real PostgreSQL, real S3
# server), first in the sanitizer build (ASan + UBSan), then in the ThreadSanitizer build (the unit tests
# and the integration tests whose tools run threads: ctest labels unit and tsan), both on PostgreSQL 15,
# then in the Release build, whose server-facing suites also run on PostgreSQL 16, 17 and 18 (ctest
# labels pg16, pg17, pg18; tests/CMakeLists.txt) and which alone also runs scripts/demo.sh on its tools
# (ctest label demo) and the package tests (ctest labels
# package: the .deb installed into /usr and removed, run alone; container: the podman image;
# tests/package/).
# When both run in the same call, the asan stage leaves out the S3 halves of the longest suites on 15
# (label pg15s3, tests/CMakeLists.txt), which the release stage runs, and the release stage leaves out the
# integration suites asan ran already on 15 (labels pg15 and serverless): the sanitizer build runs the
# same tests against the same server with more checks, and CI's time budget goes to the other versions
# instead.
# Usage: scripts/test.sh [asan|tsan|release ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(asan tsan release)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Two tests at a time: every test starts its own servers on free ports in its own directories, and most
# of an integration test's time is spent waiting on servers, not computing.
jobs="${PGVAULT_TEST_JOBS:-2}"
# The Release stage runs three: its tools are fast, so its tests wait longer on servers and on S3's settle
# times (the 2 cores were about 79% busy at two at a time).
release_jobs="${PGVAULT_TEST_JOBS:-3}"
status=0
# Each stage says how long it took (CI's log is how its time budget is kept).
stage_start=$SECONDS
stage_done() { echo "=== $1: $((SECONDS - stage_start)) s ===" && stage_start=$SECONDS; }
# CI shows only the end of its log, so the last lines name every stage's failed tests.
summary=()
# run_ctest KIND JOBS [ctest args...]: runs one stage's tests and notes in the summary what failed.
run_ctest() {
  local kind=$1 k_jobs=$2 failed
  shift 2
  if (cd "build/$kind" && ctest --output-on-failure --timeout 1800 -j"$k_jobs" "$@"); then
    summary+=("$kind: all tests passed")
  else
    status=1
    failed=$(sed 's/^[0-9]*://' "build/$kind/Testing/Temporary/LastTestsFailed.log" 2>/dev/null | tr '\n' ' ')
    summary+=("$kind: FAILED ${failed:-(ctest did not say which)}")
  fi
}
for kind in "${kinds[@]}"; do
  echo "=== $kind build ==="
  scripts/build.sh "$kind"
  stage_done "$kind build"
  echo "=== $kind tests ==="
  if [ "$kind" = tsan ]; then
    # A race ends the process with exit code 66 (a tool run by pytest or by PostgreSQL too), and every
    # report is also kept in a file: a race in a call whose failure a test expects still fails the stage.
    logs="$PWD/build/tsan/tsan-reports"
    rm -rf "$logs" && mkdir -p "$logs" && chmod 1777 "$logs"  # the tools also run as the postgres user
    export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp:log_path=$logs/tsan"
    run_ctest tsan "$jobs" -L '^(unit|tsan)$'
    if compgen -G "$logs/tsan.*" >/dev/null; then
      echo "=== ThreadSanitizer reports ===" && cat "$logs"/tsan.* && status=1
      reports=("$logs"/tsan.*)
      summary+=("tsan: ${#reports[@]} ThreadSanitizer report files in $logs (above)")
    fi
    unset TSAN_OPTIONS
  elif [ "$kind" = asan ] && [[ " ${kinds[*]} " == *" release "* ]]; then
    run_ctest asan "$jobs" -LE '^pg15s3$'
  elif [ "$kind" = release ] && [[ " ${kinds[*]} " == *" asan "* ]]; then
    run_ctest release "$release_jobs" -LE '^(pg15|serverless)$'
  else
    k_jobs=$jobs
    if [ "$kind" = release ]; then k_jobs=$release_jobs; fi
    run_ctest "$kind" "$k_jobs"
  fi
  stage_done "$kind tests"
done
echo "=== summary ==="
printf '%s\n' "${summary[@]}"
exit $status
