// pitr-prepare: restore a base backup from the repository into a data directory and set it up for
// point-in-time recovery (PostgreSQL 12+ style: recovery.signal / standby.signal + postgresql.auto.conf).
//
// Order of work, and what the data directory looks like if it stops half-way:
//  1. Plan (reads only): load the inventory, resolve the target timeline through the history files, resolve
//     a time, xid or name target from the WAL index (target_resolve.h), choose the backup (the newest
//     complete one that ends before the target's record, or --backup), and check that the archive holds
//     every WAL segment recovery will ask for (up to the target's segment when it was resolved, else to
//     the end of the timeline). A target the archive does not hold, or a missing segment, fails here,
//     before the data directory is touched (ErrorKind::NotFound naming what the archive holds or the segment).
//  2. Prepare the directory: refuse a non-empty one unless `force` (then its contents are removed; a
//     running server's directory is refused even then). In a tablespace location, the directories the
//     backup writes (PG_15_<catversion>) must not exist, even with `force`: the location may belong to
//     another cluster; remove them by hand or restore elsewhere with tablespace_map.
//  3. Restore: bundles are decoded in parallel; each bundle's plaintext is split into its files, written
//     with their mode and mtime and checked against the manifest's CRC-32C (SHA-256 in manifests before format 2)
//     and size; the bundle object itself is verified by its SHA-256. global/pg_control is
//     written under a temporary name, and a marker file (kRestoreMarker) sits in the data directory.
//     An incremental backup is rebuilt straight from the repository from its chain (common/repo/chain.h:
//     complete, one database system): the backups oldest first, each one's bundles in parallel, bases
//     written and block-diffs applied in place (chain_write.cpp; no staging copy of the chain); its
//     backup_label loses the "INCREMENTAL FROM" lines. Choosing a backup considers every type: an
//     incremental whose chain is broken is passed over (named with --backup: the broken link is the error).
//  4. Finish: postgresql.auto.conf gets the recovery settings, the signal file is written, every file and
//     directory is made durable (one syncfs per filesystem, on a descriptor of each location opened
//     before its first file was written, where syncfs reports write-back errors: common/base/fs_sync.h;
//     elsewhere each file was fsynced when written and every directory is fsynced now), and only then
//     global/pg_control is renamed into place (the commit point: without pg_control PostgreSQL refuses
//     to start) and the marker removed. A write-back error fails the restore before that rename.
// On any failure after step 2 everything written is removed again (the data directory is left empty, the
// tablespace directories as they were); if even that fails, the marker stays and names the problem.
// So PostgreSQL never starts on a half-restored or unverified directory.
//
// Each step is a named function of restore_steps.h (internal to common/restore/), one file per job.
//
// Tablespaces: pitr-prepare creates the pg_tblspc/<oid> symbolic links itself (to the original location
// or its --tablespace-map replacement) and does not write tablespace_map, so PostgreSQL uses the links.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/repo/inventory.h"
#include "common/repo/manifest.h"
#include "common/repo/repo.h"

namespace pgvault {

inline constexpr const char* kRestoreMarker = "pgvault-restore-in-progress";

enum class TargetKind { Latest, Immediate, Time, Lsn, Xid, Name };

struct RecoveryTarget {
  TargetKind kind = TargetKind::Latest;
  std::string value;           // as given (time, LSN, xid or restore point name); empty for latest/immediate
  std::uint64_t lsn = 0;       // Lsn: parsed
  double time = 0;             // Time: seconds since the epoch (UTC), fractional
};

// Parses a --target-time value: "YYYY-MM-DD HH:MM:SS[.frac]" or with 'T', followed by a zone: "Z", "+HH",
// "+HHMM" or "+HH:MM" (also "-"). A zone is required (a time without one would mean the server's
// TimeZone, which pitr-prepare cannot know). Throws InvalidInput.
double parse_target_time(const std::string& text);

struct RestoreOptions {
  std::string pgdata;                         // required; made absolute
  RecoveryTarget target;                      // Default: latest
  std::string target_action = "promote";      // "promote" | "pause" | "shutdown". Default: promote
  std::string target_timeline = "latest";     // "latest" | "current" | a number. Default: latest
  bool exclusive = false;                     // recovery_target_inclusive = off. Default: false
  std::string backup;                         // label to restore; "" = choose. Default: ""
  bool standby = false;                       // standby.signal instead of recovery.signal
  std::vector<std::pair<std::string, std::string>> tablespace_map;  // OLD=NEW locations
  // "off": postgresql.auto.conf gets archive_mode = off, so a test restore never archives its new
  // timeline into the repository it came from; "preserve": the server's own setting stays (a restore
  // that becomes the new primary). Default: off
  std::string archive_mode = "off";
  bool force = false;                         // empty a non-empty data directory first
  bool dry_run = false;                       // plan only
  int parallel = 0;                           // decoding threads; 0 = [backup] parallel, then cores
  std::string restore_command;                // the full restore_command value (see make_restore_command)
  bool progress = false;                      // progress line on stderr (a terminal)
};

// restore_command for postgresql.auto.conf: `wal_fetch` and `config_path` are shell-quoted when needed;
// each `sets` entry becomes --set KEY=VALUE; a `repo` name becomes --repo NAME (wal-fetch then reads that
// repository only; without it wal-fetch tries every configured repository in order). config_path ""
// leaves --config out. A % in any of them is written as %% (PostgreSQL's escape for a literal %).
std::string make_restore_command(const std::string& wal_fetch, const std::string& config_path,
                                 const std::vector<std::string>& sets, const std::string& repo = "");

// A time, xid or name target resolved from the WAL index (target_resolve.h) before anything is written.
struct ResolvedTarget {
  bool resolved = false;              // false: not resolved in advance (`how` says why; planned as before)
  std::string segment;                // the WAL segment holding the record recovery stops at
  std::optional<std::uint64_t> lsn;   // the record's LSN, when known (an index knows a restore point's,
                                      // a segment read any record's; else only the segment)
  std::string how;                    // one line: what the record is and how it was found, or why not
};

struct RestorePlan {
  BackupManifest backup;
  // An incremental backup's ancestors, its full backup first (empty for a full backup): the chain its
  // files are reconstructed from (common/repo/chain.h; restore_steps.h write_chain).
  std::vector<BackupManifest> chain;
  std::uint32_t target_timeline = 0;   // resolved
  WalCheck wal;                        // ok() when the archive can feed the recovery
  std::string why;                     // how the backup was chosen, one line (names the newer backups
                                       // passed over because they end after the target)
  std::optional<ResolvedTarget> resolved;  // time, xid and name targets; nullopt for the others
  std::vector<std::pair<std::uint32_t, std::string>> tablespaces;  // oid -> location to restore into
};

// Step 1 above. Throws NotFound (no suitable backup, a missing WAL segment or history file; the message
// names it), InvalidInput (bad target, timeline not a child of the backup's), and storage kinds.
RestorePlan plan_restore(Repository& repo, const Inventory& inv, const RestoreOptions& opts);
// The same, reading the WAL index through `index` (target_resolve.h) rather than from `repo`.
class WalIndexSource;
RestorePlan plan_restore(Repository& repo, const Inventory& inv, const RestoreOptions& opts, WalIndexSource& index);

struct RestoreResult {
  RestorePlan plan;
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::string settings;  // the lines appended to postgresql.auto.conf
};

// Everything above. With dry_run, the plan and step 2's checks of the directories (files/bytes from the
// manifest); nothing is written. Errors: as plan_restore,
// plus InvalidInput (directory not empty, server running), Corruption (a bundle or file failed
// verification: the message names the backup label and the file), Io, and storage kinds.
RestoreResult run_restore(Repository& repo, const RestoreOptions& opts);

// The recovery settings written to postgresql.auto.conf (for tests and --dry-run output).
std::string recovery_settings(const RestoreOptions& opts, const RestorePlan& plan);

// postgresql.auto.conf text with every recovery setting pitr-prepare writes removed (stale ones from the
// backed-up server), followed by `settings`.
std::string rewrite_auto_conf(const std::string& existing, const std::string& settings);

// "pg_ctl -D <pgdata> start", quoted for a shell.
std::string restore_next_command(const RestoreOptions& opts);
std::string restore_summary_line(const RestoreResult& r, const RestoreOptions& opts);
// JSON: {"dry_run", "backup", "backup_timeline", "chain" (the labels the files come from, the full
// backup first; [backup] for a full one), "pgdata", "target", ..., "next_command"}.
std::string restore_summary_json(const RestoreResult& r, const RestoreOptions& opts);

}  // namespace pgvault
