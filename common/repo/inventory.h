// The archive inventory: what a repository holds (backups, WAL per timeline, timeline history) and the
// WAL arithmetic every reader of it needs: gaps, timeline chains, and "does the archive hold every
// segment a recovery from this backup to that point will ask for".
//
// Users: archive-info (listing, --verify), pitr-prepare (choosing a backup, the WAL check before any
// write), retention-prune (planning). Everything here reads only; nothing writes to the repository.
//
// Timeline rules follow PostgreSQL 15 (xlogrecovery.c):
// - A history file NNNNNNNN.history lists, one line each, "parentTLI<TAB>switchpoint<TAB>reason" for every
//   ancestor of timeline N, oldest first; timeline N begins at the last line's switchpoint. Timelines
//   increase; switchpoints need not (timeline.c, readTimeLineHistory): a point-in-time recovery back to a
//   point before an earlier switch writes e.g. "1 0/3018CB0" then "2 0/3018C48".
// - An LSN belongs to the NEWEST timeline of the history whose [begin, switchpoint) holds it
//   (tliOfPointInHistory); so a timeline whose switchpoint is not after an earlier one is empty.
// - Recovery reads segment s from the NEWEST timeline of the chain whose begin segment is <= s (the segment
//   holding a switchpoint is read from the new timeline; XLogFileReadAnyTLI).
// - recovery_target_timeline = 'latest' means the highest N such that every history file
//   start+1 .. N exists in the archive (PostgreSQL probes consecutively and stops at the first gap).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/errors.h"
#include "common/pg/wal.h"
#include "common/repo/backups.h"
#include "common/repo/manifest.h"
#include "common/repo/marks.h"
#include "common/repo/repo.h"
#include "common/repo/wal_index.h"

namespace pgvault {

// One archived WAL segment (or .partial segment).
struct WalObject {
  std::uint32_t timeline = 0;
  std::uint64_t segno = 0;       // segment number (LSN / segment size)
  std::string name;              // file name as PostgreSQL knows it
  std::string key;               // storage key
  std::uint64_t stored_size = 0; // bytes in the repository
  std::int64_t mtime = 0;        // storage mtime (seconds since the epoch; 0 when the backend has none)
};

// The segments of one timeline, sorted by segno, without duplicates.
struct WalTimeline {
  std::uint32_t timeline = 0;
  std::vector<WalObject> segments;
  std::vector<WalObject> partials;  // NNN.partial files (the old timeline's last segment at a promotion)
};

// One line of a history file: timeline `parent` ended (switched to its child) at `switchpoint`.
struct HistoryEntry {
  std::uint32_t parent = 0;
  std::uint64_t switchpoint = 0;
  std::string reason;
};

struct TimelineHistory {
  std::uint32_t timeline = 0;
  std::string key;                    // storage key of NNNNNNNN.history
  std::vector<HistoryEntry> entries;  // ancestors, oldest first (empty only when unreadable)
  std::string error;                  // non-empty when the file could not be read or parsed
};

// A backup directory without a usable manifest.
struct IncompleteBackup {
  std::string label;
  std::uint64_t objects = 0;
  std::uint64_t stored_bytes = 0;
  std::int64_t newest_mtime = 0;  // newest object's mtime (retention's grace period), 0 when unknown
  std::string error;              // "" = no manifest (unfinished or interrupted base-push);
                                  // else why the manifest could not be read (corrupt, wrong key...)
  ErrorKind error_kind = ErrorKind::Corruption;  // the kind of `error` (Corruption, NotFound, Config)
};

struct Inventory {
  std::optional<Identity> identity;                  // nullopt: nothing was ever pushed
  std::uint32_t wal_segment_size = kDefaultWalSegmentSize;  // from the identity (default when none)
  // Complete backups, oldest first (by label): the heads of their manifests, file entries dropped
  // (BackupManifest::files_dropped holds their number; with_files below reads them).
  std::vector<BackupManifest> backups;
  std::vector<IncompleteBackup> incomplete;          // by label
  // Complete backups' marks (repo/marks.h), by label; absent = none. A marks object that cannot be read
  // is listed with `error` set and keep = true: retention keeps what may be kept until an operator looks.
  std::map<std::string, BackupMarks> marks;
  std::map<std::uint32_t, WalTimeline> wal;          // timeline -> segments
  std::map<std::uint32_t, TimelineHistory> histories;  // timeline -> its history file
  std::vector<WalObject> backup_history_files;       // NNN.XXXXXXXX.backup files PostgreSQL archives
  std::vector<std::string> unknown_keys;             // objects under wal/ that are not WAL file names

  // The segment if archived (not .partial).
  const WalObject* find_segment(std::uint32_t timeline, std::uint64_t segno) const;
  // The complete backup / the incomplete one under `label`, or null.
  const BackupManifest* find_backup(const std::string& label) const;
  const IncompleteBackup* find_incomplete(const std::string& label) const;
  bool has_history(std::uint32_t timeline) const { return histories.count(timeline) != 0; }
};

// Lists the repository (the backups through list_backup_folders, see backups.h) and reads every
// manifest and history file (small objects). A manifest that cannot be read or decoded does not throw: its backup is listed in `incomplete` with the error. Storage and key
// failures (Transient, Auth...) throw.
Inventory load_inventory(Repository& repo);

// The whole manifest of a backup the inventory lists: `head` itself when it still has its file entries,
// else read again from `repo` (verified as every read is) and required to be the same backup (head_json
// and file count): Corruption when it changed since the inventory was loaded, NotFound when it is gone.
BackupManifest with_files(Repository& repo, const BackupManifest& head);

// Builds the WAL part of an inventory from a listing of keys under wal/ (no reads). Used by
// load_inventory and by unit tests; history entries must then be filled separately.
void add_wal_listing(Inventory& inv, const std::vector<ObjectInfo>& wal_objects);

// Parses a history file's text. Comment lines (#) and blank lines are skipped. Corruption naming `what`
// when a line is malformed or timelines do not increase (switchpoints may: see the timeline rules above).
std::vector<HistoryEntry> parse_history(const std::string& text, const std::string& what);

// ---- WAL ranges and timeline chains ----------------------------------------------------------------

// A run of missing segments on one timeline, inclusive.
struct SegmentRange {
  std::uint32_t timeline = 0;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};

// Gaps between the first and last archived segment of a timeline.
std::vector<SegmentRange> timeline_gaps(const WalTimeline& tl);

// The path recovery takes through timelines to reach `target_timeline`: one step per timeline, oldest
// first, each with the segment range it is read for. The last step's `end_segno` is open (UINT64_MAX).
struct ChainStep {
  std::uint32_t timeline = 0;
  std::uint64_t begin_segno = 0;  // first segment read from this timeline
  std::uint64_t end_segno = 0;    // last segment read from this timeline (inclusive)
  std::uint64_t begin_lsn = 0;    // where the timeline begins (0 for the first one)
  std::uint64_t end_lsn = UINT64_MAX;  // end of its WAL in the history (its switchpoint, or a smaller later one); UINT64_MAX for the last
};

// Chain from `from_timeline` at `from_lsn` to `to_timeline`: every timeline recovery reads segments from,
// with empty ones left out. Throws InvalidInput when from_lsn is not on from_timeline in to_timeline's
// history (PostgreSQL: "requested timeline is not a child of this server's history"), NotFound when a
// needed history file is missing.
std::vector<ChainStep> timeline_chain(const Inventory& inv, std::uint32_t from_timeline, std::uint64_t from_lsn,
                                      std::uint32_t to_timeline);

// PostgreSQL's recovery_target_timeline = 'latest' starting from `timeline`.
std::uint32_t latest_timeline(const Inventory& inv, std::uint32_t timeline);

// Every timeline that descends from `timeline` after `lsn` (inclusive of `timeline` itself), ascending.
std::vector<std::uint32_t> descendant_timelines(const Inventory& inv, std::uint32_t timeline, std::uint64_t lsn);

// Result of checking that the archive can feed a recovery.
struct WalCheck {
  std::vector<ChainStep> chain;
  std::uint64_t first_segno = 0;  // segment of the backup start
  std::uint64_t last_segno = 0;   // last segment required (or, open-ended, the last one archived)
  std::uint64_t segments = 0;     // segments checked
  std::optional<std::string> missing;     // first missing WAL file name (segment or history file)
  std::optional<std::string> missing_key; // its storage key
  std::vector<std::string> missing_all;   // every missing segment name (capped at 1000)
  bool ok() const { return !missing; }
};

// Checks every segment from `start_lsn` on the backup's timeline, following `chain`, up to and including
// the segment holding `end_lsn`; with end_lsn = nullopt, up to the last segment archived on the chain
// (and at least through `min_end_lsn`, e.g. the backup's stop LSN).
WalCheck check_wal_path(const Inventory& inv, const std::vector<ChainStep>& chain, std::uint64_t start_lsn,
                        std::optional<std::uint64_t> end_lsn, std::uint64_t min_end_lsn);

// Highest LSN the archive holds on the chain: end of its last archived segment (0 when none).
std::uint64_t archived_end_lsn(const Inventory& inv, const std::vector<ChainStep>& chain);

// The recovery window: the earliest and latest points the repository can recover to.
struct RecoveryWindow {
  bool available = false;          // there is at least one complete backup
  std::string earliest_time;       // the oldest backup's stop time
  std::uint64_t earliest_lsn = 0;  // ... and stop LSN
  std::string earliest_backup;
  std::uint32_t latest_timeline = 0;  // newest timeline reachable from the oldest backup
  std::uint64_t latest_lsn = 0;       // end of the last archived segment on it
  std::string latest_segment;
  std::int64_t latest_mtime = 0;      // storage mtime of that segment (approximate time), 0 when unknown
};
RecoveryWindow recovery_window(const Inventory& inv);

// ---- Recovery targets: what the WAL index (wal_index.h) says the archive can recover to ---------------

// One timeline's restore points and commit-time range, from the indexes of its segments.
struct TimelineTargets {
  std::uint32_t timeline = 0;
  std::uint64_t segments = 0;                // archived segments of the timeline
  std::uint64_t indexed = 0;                 // of which have a valid index (the others say nothing)
  std::optional<PgTimestamp> first_commit;   // earliest commit or abort record time in those indexes
  std::optional<PgTimestamp> last_commit;    // latest
  // Named restore points in LSN order. A timeline's first segment begins with a copy of its parent's
  // WAL up to the switch point: restore points before the switch point belong to the parent and are
  // listed there only.
  std::vector<WalEvent> restore_points;
};

struct RecoveryTargets {
  std::vector<TimelineTargets> timelines;  // ascending
  std::vector<std::pair<std::string, std::string>> invalid;  // segment name, why its index is unusable
};

// The targets from the index of every archived segment, as `index_of` gives it (nullopt: the segment has
// no index; Corruption: an invalid one, listed in `invalid`).
RecoveryTargets recovery_targets(const Inventory& inv,
                                 const std::function<std::optional<WalIndex>(const WalObject&)>& index_of);
// The same reading every index from `repo`, `parallel` at a time (0: one per core): one GET per segment.
RecoveryTargets load_recovery_targets(Repository& repo, const Inventory& inv, int parallel);

}  // namespace pgvault
