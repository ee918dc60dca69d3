#!/usr/bin/env bash
# Installs everything pgvault needs to build and test, from Debian 12's packages. Idempotent: when every
# package is already installed it does nothing (no apt-get update).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ccache
  libpq-dev libzstd-dev libssl-dev libcurl4-openssl-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev
  postgresql-15 postgresql-client-15 zstd
  python3 python3-pytest python3-botocore python3-cryptography awscli
  swift swift-proxy swift-account swift-container swift-object
)
if [ "${PGVAULT_BENCH:-}" = 1 ]; then PACKAGES+=(pgbackrest hyperfine time); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
# Packages must not start services here (postgresql, swift): the tests start their own servers.
policy_added=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  policy_added=1
fi
trap '[ $policy_added = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
