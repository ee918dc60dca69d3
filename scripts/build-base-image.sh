#!/usr/bin/env bash
# Makes the Debian 12 base image that docker/Dockerfile's FROM names (docker.io/library/debian:bookworm)
# available to podman on a machine that reaches no image registry: a minbase root debootstrapped from
# this machine's apt sources, `podman import`ed under that name. The root is cached as a tarball
# ($PGVAULT_IMAGE_CACHE, default /var/cache/pgvault/images), so a machine debootstraps once; an image
# already in podman's store is left as it is. Run as root (debootstrap and podman here need it).
# Usage: scripts/build-base-image.sh [--rebuild]   (--rebuild: debootstrap again, replace the cache)
set -euo pipefail
image="${PGVAULT_BASE_IMAGE:-docker.io/library/debian:bookworm}"
cache="${PGVAULT_IMAGE_CACHE:-/var/cache/pgvault/images}"
tarball="$cache/debian-bookworm-minbase.tar"
rebuild=0
[ "${1:-}" = --rebuild ] && rebuild=1

if [ $rebuild = 0 ] && podman image exists "$image"; then
  echo "base image: $image is already there" >&2
  exit 0
fi

mirror_of_machine() {
  # The first Debian (not security) URI of this machine's apt sources, deb822 or one-line format.
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

if [ $rebuild = 1 ] || [ ! -s "$tarball" ]; then
  root=$(mktemp -d /var/tmp/pgvault-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  mirror=$(mirror_of_machine)
  echo "base image: debootstrap --variant=minbase bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
  rm -f "$root.log"
  # The same sources as the machine (main and security), and no package caches in the image.
  rm -f "$root/etc/apt/sources.list"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && cp "$f" "$root$f"
  done
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  mkdir -p "$cache"
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

podman import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
echo "base image: imported $image from $tarball" >&2
