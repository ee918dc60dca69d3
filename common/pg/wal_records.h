// Reading WAL records (PostgreSQL 15 to 18) for what recovery targets need: the commit and abort records
// of transactions (prepared ones too) and named restore points. Page headers, records that continue across
// pages and segments, record CRCs and the xact and restore-point main data are read here; nothing else of
// a record is interpreted. See docs/FORMAT.md ("WAL index") for how the results are stored.
//
// Semantics follow PostgreSQL's recovery (xlogrecovery.c): a time target stops at the first commit or
// abort record whose xact_time is after the target (at or after it with recovery_target_inclusive off);
// an xid target at the commit or abort record of that top-level xid (for COMMIT/ABORT PREPARED the
// prepared transaction's xid); a name target after the first restore point of that name.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/io.h"

namespace pgvault {

// PostgreSQL's TimestampTz: microseconds since 2000-01-01 00:00:00 UTC.
using PgTimestamp = std::int64_t;
double pg_timestamp_to_unix(PgTimestamp t);  // seconds since 1970-01-01 UTC
PgTimestamp unix_to_pg_timestamp(double unix_seconds);
std::string format_pg_timestamp(PgTimestamp t);  // "2026-11-30 08:41:07.123456+00"

enum class WalEventKind : std::uint8_t { Commit, Abort, CommitPrepared, AbortPrepared, RestorePoint };
std::string_view wal_event_kind_name(WalEventKind k);  // "commit", "abort", ..., "restore point"

struct WalEvent {
  WalEventKind kind = WalEventKind::Commit;
  std::uint64_t lsn = 0;      // where the record starts
  std::uint64_t end_lsn = 0;  // where it ends: PostgreSQL's EndRecPtr (past its last byte, rounded up to 8)
  PgTimestamp time = 0;       // xact_time, or the restore point's rp_time
  std::uint32_t xid = 0;      // the top-level xid (of the prepared transaction for *Prepared); 0 for a restore point
  std::string name;           // the restore point's name; empty otherwise
};

// What the records that START in one segment say. A record that starts in the segment and ends in a
// later one cannot be read from the segment alone: its start is `open_record_lsn`, and
// `open_record_may_be_event` says whether it may be an event (its header names the xact or the xlog
// resource manager, or the header itself is cut by the segment's end). read_wal_events reads such a
// record from the segment and its successor.
struct WalSegmentSummary {
  std::uint64_t start_lsn = 0;   // the segment's first byte
  std::uint64_t records = 0;     // records that start in the segment (complete ones)
  std::vector<WalEvent> events;  // in LSN order
  std::optional<std::uint64_t> open_record_lsn;
  bool open_record_may_be_event = false;
  bool switched = false;         // the segment ends with an XLOG_SWITCH record (the rest is padding)
};

// Reads every record that starts in `segment` (one whole segment of `segment_size` bytes whose first
// byte is at LSN `start_lsn`; the continuation of a record begun in the previous segment is skipped).
// Stops at the end of valid WAL (a zero length, a record whose CRC or previous-record link does not
// match: the rest of a segment that was never fully written), which is not an error. Throws Corruption
// naming `what` when a page header is invalid where records continue (wrong magic, page address,
// continuation length) or a record is malformed in a way PostgreSQL itself would refuse.
WalSegmentSummary summarize_wal_segment(ByteView segment, std::uint32_t segment_size, std::uint64_t start_lsn,
                                        std::string_view what);

// The events of the records that start in `segments[0]`, reading records that continue into the later
// segments (consecutive, each whole) from them. For a record open at the end of the last segment given,
// nothing is returned. Errors as summarize_wal_segment.
std::vector<WalEvent> read_wal_events(const std::vector<ByteView>& segments, std::uint32_t segment_size,
                                      std::uint64_t start_lsn, std::string_view what);

// The reader behind both functions above, fed the WAL as it is read (wal-push scans a segment while it
// uploads it): it holds a few kilobytes whatever the records' sizes. Every record's CRC is checked; only
// the xact and restore-point records' main data is interpreted.
class WalScanner {
 public:
  // Reads the WAL from `start_lsn` (a segment's first byte, where its long page header is). Records that
  // start at or after `start_lsn + segment_size` are not read; one begun before is read to its end.
  WalScanner(std::uint32_t segment_size, std::uint64_t start_lsn, std::string what);
  ~WalScanner();
  WalScanner(const WalScanner&) = delete;
  WalScanner& operator=(const WalScanner&) = delete;

  // The next bytes of the WAL, in order, in pieces of any size. Throws as summarize_wal_segment (and
  // Corruption for an unknown WAL page magic: the major version decides the layout of some records).
  void feed(ByteView data);
  // True once more bytes would not be read: the end of valid WAL was found, or every record that
  // starts in the first segment has been read.
  bool done() const;
  // What the bytes fed so far say; a record they end inside is the open record.
  WalSegmentSummary summary() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace pgvault
