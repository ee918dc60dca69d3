#!/usr/bin/env bash
# Builds pgvault. Usage: scripts/build.sh release|asan [TARGET...]  (into build/release or build/asan)
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DPGVAULT_SANITIZE=ON) ;;
  *) echo "usage: $0 release|asan" >&2; exit 2 ;;
esac
cmake -S . -B "build/$kind" -DPGVAULT_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "build/$kind" -j"$(nproc)" "${targets[@]}"
