// The WAL index: for every archived WAL segment, a small object walindex/<first 16 hex>/<segment> (a codec
// object like every other: digest-verified, compressed, encrypted when configured) that says what
// recovery targets need from the segment's records, so pitr-prepare can resolve a time, xid or name
// target to a position before it restores anything. wal-push writes it after the segment is stored;
// retention deletes it with the segment. The format is in docs/FORMAT.md ("WAL index").
//
// An index is derived from its segment alone and is only an accelerator for planning: a segment without
// one (archived by an older pgvault, or whose index write failed) is planned for as before, with a log
// line; an index that does not decode or validate is treated the same way and named in the log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/pg/wal.h"
#include "common/pg/wal_records.h"
#include "common/repo/repo.h"

namespace pgvault {

inline constexpr int kWalIndexFormat = 1;

struct WalIndex {
  int format = kWalIndexFormat;
  std::string segment;              // the segment's file name (must match the key it was read from)
  std::uint64_t start_lsn = 0;      // the segment's first byte
  std::uint64_t records = 0;        // records that start in the segment
  // xact_time of the commit and abort records that start in the segment (nullopt: none).
  std::optional<PgTimestamp> min_time;
  std::optional<PgTimestamp> max_time;
  // Top-level xids of those records (commit, abort, and the prepared xid of COMMIT/ABORT PREPARED),
  // sorted, as inclusive runs [first, last].
  std::vector<std::pair<std::uint32_t, std::uint32_t>> xid_runs;
  std::vector<WalEvent> restore_points;  // kind RestorePoint, in LSN order
  std::optional<std::uint64_t> open_record_lsn;  // as WalSegmentSummary
  bool open_record_may_be_event = false;

  bool has_xid(std::uint32_t xid) const;
  std::string to_json() const;
  // Corruption naming `what` for malformed text, an unknown format, runs out of order, or values that
  // do not fit the segment (an LSN outside it).
  static WalIndex from_json(const std::string& text, const std::string& what);
};

// The index of segment `name` from its summary.
WalIndex make_wal_index(const WalFileName& name, const WalSegmentSummary& summary);

// Writes (overwrites: it is derived from the segment's content) the index of `name`.
void write_wal_index(Repository& repo, const WalFileName& name, const WalIndex& index);

// The index of `name`, checked against the name (segment, start LSN for the repository's segment size);
// nullopt when there is no index object. Corruption when one exists but is invalid; storage kinds.
std::optional<WalIndex> read_wal_index(Repository& repo, const WalFileName& name);
// The same for a repository of `segment_size`-byte segments (no identity read: for threads sharing the
// repository, e.g. archive-info --verify).
std::optional<WalIndex> read_wal_index(Repository& repo, const WalFileName& name, std::uint32_t segment_size);

}  // namespace pgvault
