#!/bin/sh
# Entrypoint of the pgvault image. `postgres [ARGS]` (the default command): on first start, unless
# $PGDATA already holds a cluster (a restored one included), initdb with data checksums and archiving
# through wal-push; then repo-init (creates the repository once, afterwards only checks it and the key)
# and the server. Any other command runs as it is: base-push, pitr-prepare, archive-info, psql...
# Environment: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (the postgres role's password; without one
# the server takes local socket connections only), PGVAULT_ARCHIVE_TIMEOUT (default 60s),
# PGVAULT_CONFIG (default /etc/pgvault/pgvault.toml), PGPORT.
set -eu

init_cluster() {
  password="${POSTGRES_PASSWORD:-}"
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then password=$(cat "$POSTGRES_PASSWORD_FILE"); fi
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  if [ -n "$password" ]; then set -- --auth-host=scram-sha-256 --pwfile="$pwfile"; else set --; fi
  initdb -D "$PGDATA" --data-checksums -U postgres -E UTF8 --auth-local=peer "$@" >/dev/null
  rm -f "$pwfile"
  cat >>"$PGDATA/postgresql.conf" <<CONF
# --- pgvault image ---
listen_addresses = '*'
wal_level = replica
archive_mode = on
archive_command = 'wal-push %p'
archive_timeout = '${PGVAULT_ARCHIVE_TIMEOUT:-60s}'
CONF
  if [ -n "$password" ]; then
    printf 'host all all all scram-sha-256\nhost replication all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  fi
  echo "pgvault-entrypoint: initialised $PGDATA (archiving through wal-push)" >&2
}

if [ "${1:-postgres}" = postgres ]; then
  [ $# -gt 0 ] && shift
  [ -s "$PGDATA/PG_VERSION" ] || init_cluster
  repo-init
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
