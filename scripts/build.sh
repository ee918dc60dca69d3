#!/usr/bin/env bash
# Builds pgvault. Usage: scripts/build.sh release|asan|tsan [TARGET...]  (into build/<kind>)
#   release: -O2, asan: Debug with ASan + UBSan, tsan: -O1 with ThreadSanitizer. The sanitizer builds
#   carry line tables only (-g1: file, line and function in every report, a fraction of the compile and
#   link time of full debug info); for gdb, add -DCMAKE_CXX_FLAGS_DEBUG=-g to a build of your own.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DPGVAULT_SANITIZE=ON) ;;
  tsan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" -DPGVAULT_TSAN=ON) ;;
  *) echo "usage: $0 release|asan|tsan" >&2; exit 2 ;;
esac
# ccache (from setup.sh) keeps compiled objects between runs on the same machine, whatever the clone's path;
# unless CCACHE_DIR says otherwise, in the cache that also keeps the downloaded PostgreSQL servers
# (/var/cache/pgvault, when it can be written), so that a machine that keeps one keeps both.
if command -v ccache >/dev/null; then
  flags+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
  if [ -z "${CCACHE_DIR:-}" ] && mkdir -p /var/cache/pgvault/ccache 2>/dev/null && [ -w /var/cache/pgvault/ccache ]; then
    export CCACHE_DIR=/var/cache/pgvault/ccache
  fi
fi
cmake -S . -B "build/$kind" -DPGVAULT_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "build/$kind" -j"$(nproc)" "${targets[@]}"
