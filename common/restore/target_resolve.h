// Resolving a time, xid or name target from the WAL index (common/repo/wal_index.h) before anything is
// restored: which record recovery stops at, seen from each candidate backup, and whether that backup
// is consistent (has replayed past its stop LSN) by then. Internal to common/restore/ (plan.cpp uses it);
// the index and the exact WAL reads come through WalIndexSource so unit tests feed indexes built in memory.
//
// PostgreSQL's rules (xlogrecovery.c, recoveryStopsBefore/After), from the start of replay (the backup's
// start LSN) in WAL order: a time target stops before the first commit or abort record whose xact_time
// is after the target (at or after it with --target-exclusive; restore points do not count); an xid
// target at the commit or abort record of that top-level xid; a name target after the first restore
// point of that name. Stopping before the backup's stop LSN is fatal ("requested recovery stop point is
// before consistent recovery point"), so a backup serves only when stop_lsn <= the target record's LSN.
//
// The walk follows the backup's timeline chain (segment s is read from the newest timeline of the chain
// that begins at or before s, as recovery does), reading each segment's index once (cached across
// candidates). The exact events of a segment are read from the segment itself (and its successors for a
// record that continues into them) only where the index cannot decide: the target lies in the segment
// where the backup starts or stops (its LSN against the start or stop LSN), or a record left open at the
// segment's end may be the target. A segment without an index, or whose index is invalid, or a segment
// missing from the archive, leaves the target unresolved: the caller plans as before (with a log line).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/repo/inventory.h"
#include "common/repo/wal_index.h"
#include "common/restore/restore.h"

namespace pgvault {

// Where the resolver reads from. Calls come from the planning thread only.
class WalIndexSource {
 public:
  virtual ~WalIndexSource() = default;
  // The index of `segment`; nullopt when it has none. Corruption when one exists but is invalid.
  virtual std::optional<WalIndex> index(const WalObject& segment) = 0;
  // Asks for the indexes of `segments` ahead of need (a source may read them in parallel); default: nothing.
  virtual void prefetch(const std::vector<const WalObject*>& segments) { (void)segments; }
  // The events of the records that start in segments[0], reading records that continue into the later
  // (consecutive) segments from them; see read_wal_events (common/pg/wal_records.h).
  virtual std::vector<WalEvent> events(const std::vector<const WalObject*>& segments, std::uint32_t segment_size) = 0;
};

// The index and the segments of `repo` (read_wal_index; the segments through get_bytes, verified like
// every object). Indexes are read `parallel` at a time when prefetched.
std::unique_ptr<WalIndexSource> repository_wal_index_source(Repository& repo, int parallel);

// What one candidate backup makes of the target.
struct TargetVerdict {
  enum class Kind {
    Serves,      // the target's record is at or after the backup's stop LSN
    Before,      // the record recovery would stop at lies before the backup's end: passed over
    Absent,      // no such record in the archived WAL from the backup's start on
    Unresolved,  // the index cannot say (no index, an invalid one, a segment missing): plan as before
  };
  Kind kind = Kind::Unresolved;
  ResolvedTarget target;               // Serves and Before: where the record is
  std::optional<std::uint64_t> end;    // Serves: the last byte recovery reads to reach it
  std::string why;                     // Before, Absent, Unresolved: one line
};

class TargetResolver {
 public:
  TargetResolver(const Inventory& inv, WalIndexSource& source, const RecoveryTarget& target, bool exclusive);

  // Time, xid and name targets are resolved; the others (latest, immediate, LSN) need no index.
  static bool applies(TargetKind kind);

  // The verdict for backup `b`, whose recovery follows `chain` (timeline_chain from the backup's timeline).
  TargetVerdict judge(const BackupManifest& b, const std::vector<ChainStep>& chain);

  // One line naming what the walked archive holds, for a target no candidate found: the restore point
  // names (a few), the newest commit time, or the range of xids that commit or abort.
  std::string absent_message() const;

 private:
  struct Match;
  struct Walk;
  std::optional<Match> index_match(const WalIndex& idx, const Walk& w) const;
  std::optional<WalEvent> first_exact(const std::vector<ChainStep>& chain, std::uint64_t segno, const Walk& w,
                                      std::string& problem);
  std::optional<WalEvent> first_matching(const std::vector<WalEvent>& events, const Walk& w) const;
  bool event_matches(const WalEvent& e) const;
  const WalObject* served(const std::vector<ChainStep>& chain, std::uint64_t segno) const;
  const std::optional<WalIndex>& cached_index(const WalObject& seg);
  void prefetch_from(const std::vector<ChainStep>& chain, std::uint64_t segno, std::uint64_t end_segno);
  void note(const WalIndex& idx, std::uint64_t segno, const std::string& segment);
  TargetVerdict verdict(const BackupManifest& b, std::uint64_t segno, const std::string& segment,
                        const std::optional<WalEvent>& event, const std::string& how) const;
  std::string describe_record(const std::optional<WalEvent>& event, const std::string& segment) const;

  const Inventory& inv_;
  WalIndexSource& source_;
  RecoveryTarget target_;
  bool exclusive_ = false;
  PgTimestamp target_time_ = 0;
  std::uint32_t target_xid_ = 0;
  std::map<std::string, std::optional<WalIndex>> indexes_;  // by segment name, read at most once
  std::map<std::string, std::string> problems_;             // segment name -> why its index is invalid
  std::set<std::string> asked_;                             // indexes prefetched
  // segno -> (timeline, events read from the segment)
  std::map<std::uint64_t, std::pair<std::uint32_t, std::vector<WalEvent>>> exact_;
  // What the walks saw, for absent_message().
  std::vector<std::string> names_;
  std::optional<PgTimestamp> newest_commit_;
  std::optional<std::pair<std::uint32_t, std::uint32_t>> xid_range_;
  std::optional<std::pair<std::uint64_t, std::string>> walked_first_, walked_last_;  // (segno, name)
};

}  // namespace pgvault
