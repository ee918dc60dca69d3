#!/usr/bin/env bash
# Builds pgvault. Usage: scripts/build.sh release|asan|tsan [TARGET...]  (into build/<kind>)
#   release: -O2, asan: Debug with ASan + UBSan, tsan: -O1 with debug info and ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DPGVAULT_SANITIZE=ON) ;;
  tsan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DPGVAULT_TSAN=ON) ;;
  *) echo "usage: $0 release|asan|tsan" >&2; exit 2 ;;
esac
# ccache (from setup.sh) keeps compiled objects between runs on the same machine, whatever the clone's path.
if command -v ccache >/dev/null; then
  flags+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
cmake -S . -B "build/$kind" -DPGVAULT_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "build/$kind" -j"$(nproc)" "${targets[@]}"
