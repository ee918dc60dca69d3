#!/bin/bash
# pitr-prepare's durability step, A/B (tests/bench/results/restore-sync.md): a cluster of N_TABLES small
# tables (id int primary key, v text; one row each: about 4 files per table) and one of pgbench scale
# SCALE, each backed up once with base-push (fs repository), then restored REPS times by each build,
# interleaved (A,B then B,A ...). Prints one line per restore: case build seconds.
#   A=/work/main/build/release B=build/release N_TABLES=5000 SCALE=50 REPS=3 tests/bench/restore_sync.sh
set -euo pipefail
A=${A:?build A}; B=${B:?build B}
N_TABLES=${N_TABLES:-5000}; SCALE=${SCALE:-50}; REPS=${REPS:-3}; PORT=${PORT:-55471}
W=$(mktemp -d /var/tmp/restore-sync.XXXXXX); chown postgres "$W"
PGBIN=$(dirname "$(command -v pg_ctl)")
cleanup() { su postgres -c "$PGBIN/pg_ctl -D $W/pg -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
as_pg() { su postgres -c "$*"; }
setup_cluster() {  # $1 = name of the repository folder
  rm -rf "$W/pg" "$W/$1"
  cat > "$W/$1.toml" <<CONF
[repository]
type = "fs"
path = "$W/$1"
[compression]
method = "zstd"
level = 3
CONF
  chown postgres "$W/$1.toml"
  as_pg "$B/repo-init --config $W/$1.toml" >/dev/null
  as_pg "$PGBIN/initdb -D $W/pg -A trust" >/dev/null
  cat >> "$W/pg/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$W'
archive_mode = on
archive_command = '$B/wal-push --config $W/$1.toml %p'
max_wal_size = 4GB
CONF
  as_pg "$PGBIN/pg_ctl -D $W/pg -l $W/pg.log -w start" >/dev/null
}
backup_and_stop() {
  as_pg "PGHOST=$W PGPORT=$PORT $B/base-push --config $W/$1.toml" >/dev/null
  as_pg "$PGBIN/pg_ctl -D $W/pg -m fast -w stop" >/dev/null
  rm -rf "$W/pg"
}
restore_once() {  # $1 = case, $2 = build name, $3 = build dir, $4 = repository
  rm -rf "$W/dest"; sync
  local t0 t1
  t0=$(date +%s.%N)
  "$3/pitr-prepare" --config "$W/$4.toml" --pgdata "$W/dest" >/dev/null
  t1=$(date +%s.%N)
  echo "$1 $2 $(echo "$t1 - $t0" | bc) files=$(find "$W/dest" -type f | wc -l) size=$(du -sm "$W/dest" | cut -f1)MiB"
  rm -rf "$W/dest"
}
run_case() {  # $1 = case, $2 = repository
  for ((r = 0; r < REPS; r++)); do
    if ((r % 2 == 0)); then restore_once "$1" A "$A" "$2"; restore_once "$1" B "$B" "$2"
    else restore_once "$1" B "$B" "$2"; restore_once "$1" A "$A" "$2"; fi
  done
}

setup_cluster tables
for ((lo = 1; lo <= N_TABLES; lo += 500)); do
  hi=$((lo + 499 < N_TABLES ? lo + 499 : N_TABLES))
  as_pg "psql -q -h $W -p $PORT -d postgres -c \"DO \\\$\\\$ BEGIN FOR i IN $lo..$hi LOOP EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i); EXECUTE format('INSERT INTO t%s VALUES (1, ''row'')', i); END LOOP; END \\\$\\\$\""
done
as_pg "psql -q -h $W -p $PORT -d postgres -c CHECKPOINT"
backup_and_stop tables
run_case "tables$N_TABLES" tables
rm -rf "$W/tables"

setup_cluster pgbench
as_pg "pgbench -q -i -s $SCALE -h $W -p $PORT postgres" >/dev/null 2>&1
backup_and_stop pgbench
run_case "pgbench$SCALE" pgbench
