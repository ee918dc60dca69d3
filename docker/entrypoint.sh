#!/bin/sh
# Entrypoint of the pgvault image.
# `postgres [ARGS]` (the default command): on first start, unless $PGDATA already holds a cluster (a
#   restored one included), initdb with data checksums and archiving through wal-push; then repo-init
#   (creates the repository once, afterwards only checks it and the key) and the server.
# `base-push-every SECONDS [BASE-PUSH ARGS]`: the scheduled base backup of docker/compose.yaml. Waits
#   until the server answers (pg_isready: PGHOST, PGPORT...), runs base-push at once and then again
#   SECONDS after each run began (the next at once when a run took longer; runs never overlap). A failed
#   run is reported on stderr with its exit code and the schedule goes on. TERM or INT (docker stop) is
#   passed on to the running base-push or sleep, and the loop ends with exit code 0.
# Any other command runs as it is: base-push, pitr-prepare, archive-info, psql...
# Environment: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (the postgres role's password; without one
# the server takes local socket connections only; for the commands other than postgres, the password
# given to libpq as PGPASSWORD unless that is set), PGVAULT_ARCHIVE_TIMEOUT (default 60s),
# PGVAULT_CONFIG (default /etc/pgvault/pgvault.toml), PGPORT.
set -eu

password() {
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then cat "$POSTGRES_PASSWORD_FILE"; else printf '%s' "${POSTGRES_PASSWORD:-}"; fi
}

init_cluster() {
  password=$(password)
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

# Runs "$@" in the background and waits for it, also across the signals the trap below passes on to it;
# returns its exit code.
child=""
stopping=""
run_child() {
  "$@" &
  child=$!
  while :; do
    code=0
    wait "$child" || code=$?
    kill -0 "$child" 2>/dev/null || break
  done
  child=""
  return "$code"
}

base_push_every() {
  interval="${1:-}"
  case "$interval" in
    '' | *[!0-9]* | 0) echo "pgvault-entrypoint: base-push-every needs a number of seconds > 0, not '$interval'" >&2; exit 2 ;;
  esac
  shift
  trap 'stopping=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true' TERM INT
  until [ -n "$stopping" ] || pg_isready -q; do run_child sleep 2 || true; done
  while [ -z "$stopping" ]; do
    began=$(date +%s)
    run_child base-push "$@" ||
      echo "pgvault-entrypoint: base-push failed with exit code $? (docs/EXIT-CODES.md)" >&2
    wait_for=$((began + interval - $(date +%s)))
    if [ -z "$stopping" ] && [ "$wait_for" -gt 0 ]; then run_child sleep "$wait_for" || true; fi
  done
  exit 0
}

case "${1:-postgres}" in
  postgres)
    [ $# -gt 0 ] && shift
    [ -s "$PGDATA/PG_VERSION" ] || init_cluster
    repo-init
    exec postgres -D "$PGDATA" "$@"
    ;;
esac
if [ -z "${PGPASSWORD:-}" ] && [ -n "$(password)" ]; then
  PGPASSWORD=$(password)
  export PGPASSWORD
fi
if [ "$1" = base-push-every ]; then
  shift
  base_push_every "$@"
fi
exec "$@"
