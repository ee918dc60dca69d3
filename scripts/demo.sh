#!/usr/bin/env bash
# The main job on the embedded default, start to finish, on a throwaway PostgreSQL 15:
#   create a local repository with repo-init, archive through wal-push into it while pgbench writes, take a base backup with
#   base-push, mark a point in time, keep writing, then restore a second data directory to that point
#   with pitr-prepare (recovery through wal-fetch) and check that its data is exactly what the primary
#   had at that point (and not what came after). archive-info --verify checks the repository.
# Everything lives in a temporary directory that is removed at the end; both servers are stopped by PID.
# PGVAULT_DEMO_BIN=<build dir>: run on the tools built there, without setup and build (the test
# demo.main_job in tests/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
# Every tool (not only those the demo runs), so that `cmake --install build/release` works afterwards.
# A tool is a folder of tools/ with a main.cpp (tools/shared holds what they share).
TOOLS=$(cd tools && for d in */; do [ -f "$d/main.cpp" ] && echo "${d%/}"; done)
if [ -n "${PGVAULT_DEMO_BIN:-}" ]; then
  BIN="$PGVAULT_DEMO_BIN"
else
  scripts/setup.sh
  # shellcheck disable=SC2086
  scripts/build.sh release $TOOLS >/dev/null
  BIN="$PWD/build/release"
fi
PGBIN=/usr/lib/postgresql/15/bin

as_pg() { if [ "$(id -u)" -eq 0 ]; then /usr/sbin/runuser -u postgres -- "$@"; else "$@"; fi; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

WORK=$(mktemp -d /tmp/pgvault-demo.XXXXXX)
chmod 755 "$WORK"
PIDS=()     # what start() ran in the background (runuser's PID when run as root)
DATADIRS=() # the servers' data directories: their postmaster.pid names the server's own PID
cleanup() {
  local servers=() pid
  for d in "${DATADIRS[@]}"; do
    pid=$(head -1 "$d/postmaster.pid" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] && servers+=("$pid")
  done
  for pid in "${servers[@]}" "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done  # fast shutdown
  for pid in "${servers[@]}" "${PIDS[@]}"; do
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/bin"
for t in $TOOLS; do cp "$BIN/$t" "$WORK/bin/"; done
cat > "$WORK/pgvault.toml" <<TOML
[repository]
type = "fs"
path = "$WORK/repo"

[compression]
method = "zstd"
level = 3

[backup]
conninfo = "host=$WORK port=PORT user=postgres"

# The tools' local folders in the demo's directory too (by default under /var/tmp/pgvault-<uid>).
[push]
spool = "$WORK/local/push-spool"

[fetch]
spool = "$WORK/local/fetch-spool"

[check]
state_dir = "$WORK/local/state"
TOML
mkdir -p "$WORK/local/push-spool" "$WORK/local/fetch-spool" "$WORK/local/state"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$WORK"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() {  # datadir port
  as_pg "$PGBIN/postgres" -D "$1" -p "$2" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK" \
    >"$1.log" 2>&1 &
  PIDS+=($!)
  DATADIRS+=("$1")
}
psqlq() { as_pg "$PGBIN/psql" -X -A -t -q -h "$WORK" -p "$1" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$2"; }
wait_ready() { for _ in $(seq 300); do as_pg "$PGBIN/pg_isready" -q -h "$WORK" -p "$1" && return 0; sleep 0.2; done; echo "server did not start" >&2; exit 1; }
state() { psqlq "$1" "SELECT count(*) || ' accounts, sum(abalance) = ' || sum(abalance) FROM pgbench_accounts"; }

say "1. A repository (repo-init), and a PostgreSQL 15 primary archiving through wal-push into it"
as_pg "$WORK/bin/repo-init" --config "$WORK/pgvault.toml"
as_pg "$PGBIN/initdb" -D "$WORK/primary" -U postgres -A trust --data-checksums >/dev/null
cat >> "$WORK/primary/postgresql.conf" <<CONF
wal_level = replica
archive_mode = on
archive_command = '$WORK/bin/wal-push --config $WORK/pgvault.toml %p'
CONF
P1=$(port)
sed -i "s/port=PORT/port=$P1/" "$WORK/pgvault.toml"
start "$WORK/primary" "$P1"
wait_ready "$P1"
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$P1" -U postgres -i -s 10 -q postgres 2>&1 | tail -1

say "2. Base backup with base-push (replication protocol, bundles compressed in parallel)"
as_pg "$WORK/bin/base-push" --config "$WORK/pgvault.toml"

say "3. Load, then a restore point, then more load that the restore must NOT contain"
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$P1" -U postgres -T 10 -c 4 postgres 2>&1 | grep -E "^(tps|number of transactions actually)"
psqlq "$P1" "SELECT pg_create_restore_point('demo')" >/dev/null
AT_POINT=$(state "$P1")
echo "at restore point 'demo': $AT_POINT"
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$P1" -U postgres -T 5 -c 4 postgres 2>&1 | grep -E "^tps"
LATER=$(state "$P1")
echo "after more load:          $LATER"
# The segment holding the byte before the switch's end: the one it closed. (pg_walfile_name() of an LSN on
# a segment boundary, as after a switch with nothing to switch, names the next, empty segment from 17 on.)
LAST=$(psqlq "$P1" "SELECT pg_walfile_name(pg_switch_wal() - 1)")
for _ in $(seq 600); do
  [ "$(psqlq "$P1" "SELECT last_archived_wal >= '$LAST' FROM pg_stat_archiver")" = t ] && break; sleep 0.2
done
echo "archived up to $LAST: $(psqlq "$P1" "SELECT archived_count || ' files, ' || failed_count || ' failures' FROM pg_stat_archiver")"
echo "repository: $(find "$WORK/repo/wal" -type f | wc -l) objects, $(du -sh "$WORK/repo" | cut -f1) (WAL written: $(du -sh "$WORK/primary/pg_wal" | cut -f1) in pg_wal)"

say "4. Point-in-time recovery of a second data directory to 'demo': pitr-prepare, then start"
as_pg "$WORK/bin/archive-info" --config "$WORK/pgvault.toml"
as_pg "$WORK/bin/pitr-prepare" --config "$WORK/pgvault.toml" --pgdata "$WORK/restored" --target-name demo
echo "archive_mode = off" >> "$WORK/restored/postgresql.auto.conf"  # the copy must not archive into the same repository
P2=$(port)
start "$WORK/restored" "$P2"
wait_ready "$P2"
for _ in $(seq 600); do [ "$(psqlq "$P2" "SELECT pg_is_in_recovery()")" = f ] && break; sleep 0.2; done
grep -c 'restored log file' "$WORK/restored.log" | xargs echo "WAL files restored through wal-fetch:"
grep -m1 'recovery stopping' "$WORK/restored.log" | sed 's/.*LOG: *//'

say "5. Check"
as_pg "$WORK/bin/archive-info" --config "$WORK/pgvault.toml" --verify | tail -3
GOT=$(state "$P2")
echo "primary at 'demo': $AT_POINT"
echo "restored:          $GOT"
if [ "$GOT" = "$AT_POINT" ] && [ "$GOT" != "$LATER" ]; then
  printf '\033[1;32mOK: the restored cluster matches the primary exactly at the restore point.\033[0m\n'
else
  printf '\033[1;31mMISMATCH\033[0m\n'; exit 1
fi
