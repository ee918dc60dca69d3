// wal_records.h: timestamps, event names, and the whole-segment entry points over WalScanner (wal_scan.cpp).
#include "common/pg/wal_records.h"

#include <cmath>
#include <cstdio>
#include <ctime>

#include "common/base/errors.h"

namespace pgvault {

namespace {
constexpr std::int64_t kPgEpochUnixSeconds = 946684800;  // 2000-01-01 00:00:00 UTC
constexpr std::int64_t kMicros = 1000000;
}  // namespace

double pg_timestamp_to_unix(PgTimestamp t) {
  return static_cast<double>(kPgEpochUnixSeconds) + static_cast<double>(t) / static_cast<double>(kMicros);
}

PgTimestamp unix_to_pg_timestamp(double unix_seconds) {
  return std::llround((unix_seconds - static_cast<double>(kPgEpochUnixSeconds)) * static_cast<double>(kMicros));
}

// As PostgreSQL prints a timestamptz in UTC: the fraction without trailing zeros, none when zero.
std::string format_pg_timestamp(PgTimestamp t) {
  std::int64_t secs = t / kMicros;
  std::int64_t micros = t % kMicros;
  if (micros < 0) {
    micros += kMicros;
    secs -= 1;
  }
  const std::time_t unix = static_cast<std::time_t>(secs + kPgEpochUnixSeconds);
  std::tm tm{};
  gmtime_r(&unix, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out = buf;
  if (micros != 0) {
    std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(micros));
    std::string frac = buf;
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  return out + "+00";
}

std::string_view wal_event_kind_name(WalEventKind k) {
  switch (k) {
    case WalEventKind::Commit: return "commit";
    case WalEventKind::Abort: return "abort";
    case WalEventKind::CommitPrepared: return "commit prepared";
    case WalEventKind::AbortPrepared: return "abort prepared";
    case WalEventKind::RestorePoint: return "restore point";
  }
  return "unknown";
}

WalSegmentSummary summarize_wal_segment(ByteView segment, std::uint32_t segment_size, std::uint64_t start_lsn,
                                        std::string_view what) {
  if (segment.size() != segment_size) {
    throw Error(ErrorKind::Corruption, std::string(what) + ": " + std::to_string(segment.size()) +
                                           " bytes, not a whole segment of " + std::to_string(segment_size));
  }
  WalScanner scanner(segment_size, start_lsn, std::string(what));
  scanner.feed(segment);
  return scanner.summary();
}

std::vector<WalEvent> read_wal_events(const std::vector<ByteView>& segments, std::uint32_t segment_size,
                                      std::uint64_t start_lsn, std::string_view what) {
  WalScanner scanner(segment_size, start_lsn, std::string(what));
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].size() != segment_size) {
      throw Error(ErrorKind::Corruption, std::string(what) + ": segment " + std::to_string(i) + " is " +
                                             std::to_string(segments[i].size()) + " bytes, not " +
                                             std::to_string(segment_size));
    }
    if (i > 0 && (scanner.done() || !scanner.summary().open_record_lsn)) break;
    scanner.feed(segments[i]);
  }
  return scanner.summary().events;
}

}  // namespace pgvault
