// Retention: which backups and WAL the policy keeps, and the deletion of the rest, in an order that
// leaves a readable repository after a crash at any point.
//
// plan_retention() is a pure function: inventory + policy + now -> a plan naming, for every complete and
// incomplete backup, every WAL range and every leftover temporary file, whether it is kept or deleted and
// the rule that decided. It reads nothing and writes nothing. execute_retention() carries a plan out.
//
// Policy (conf/pgvault.toml [retention]); a backup is kept when ANY rule keeps it:
// - full-backups N: the newest N full backups that are restorable (their WAL from start to stop segment is
//   archived), every full backup newer than the Nth, and every incremental that depends on a kept one.
// - window D: every backup that finished inside [now - D, now], plus the newest restorable backup that
//   finished before now - D (so that any point in the window can be recovered to).
// - min-full-backups M (floor, always on): the newest M restorable full backups, as full-backups does;
//   and the newest complete backup ("newest") is never deleted.
// - future: a backup whose stop time is after `now` (the clock moved back) is kept.
// - incremental-window I (optional, with either rule above): an incremental backup that finished before
//   now - I is not kept by full-backups or window (nor taken as the window's base backup); fulls are
//   untouched. "full_backups = 4, incremental_window = 7d": four weekly fulls, a week of incrementals.
// - kept: a backup marked kept (base-push --keep, retention-prune --keep; repo/marks.h), or whose marks
//   object cannot be read, is kept until released; with the parent rule and the WAL cutoff below, so are
//   its ancestors and its WAL from its start on.
// - parent: every ancestor of a kept backup is kept, up its chain (common/repo/chain.h), whatever the
//   rules above say: a kept incremental can always be restored. WAL is kept from the oldest kept backup's
//   start, an ancestor kept only as an ancestor included.
// An incremental backup counts as restorable only when its chain is complete as well.
// With neither full-backups nor window set, retention_policy() refuses (Config error): no guessing.
// A backup whose stop time cannot be parsed counts as finished inside the window.
//
// WAL: with no complete backup, nothing is deleted. Else the cutoff is the lowest start segment of any
// kept backup; every segment, .partial and .backup file whose segment number is below it is deleted, on
// every timeline (segment numbers are positions in the WAL, the same on every timeline). Everything at
// or after it is kept, so the WAL between any kept backup's start and the newest archived segment stays
// on every timeline. History files are always kept. Objects under wal/ that are not WAL names are
// untouched. WAL deletion is skipped (rule "blocked") when a backup we cannot date by WAL position might
// need older WAL: an unreadable manifest, or a possibly-running base-push (incomplete, inside the grace
// period), whose label sorts before the oldest kept backup's.
//
// Incomplete backups (objects but no manifest.json):
// - "interrupted-delete": a retention run deleted its manifest and stopped: deleted whatever its age.
// - "expired-incomplete": its newest object is older than the grace period: deleted.
// - "grace": younger (or dated in the future): kept; a base-push may be writing it right now.
// - "unknown-age": no object mtime: kept.
// - "unreadable-manifest": it has a manifest that cannot be read (corrupt, wrong key): kept, never
//   deleted automatically (an operator decides).
// Leftover temporary files (Storage::list_temporaries: the fs backend's ".pgvault-tmp.*" of an
// interrupted write, invisible to every tool) older than the grace period are deleted. The s3 backend has none (a PUT is atomic; an abandoned
// multipart upload is aborted by the writer, and a bucket lifecycle rule covers a crash).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/format.h"
#include "common/config/config.h"
#include "common/repo/inventory.h"
#include "common/repo/repo.h"

namespace pgvault {

struct RetentionPolicy {
  int full_backups = 0;                 // 0 = rule off. Default: 0
  std::optional<std::int64_t> window;   // seconds; nullopt = rule off. Default: off
  std::string window_text;              // as configured, for reports ("30d")
  int min_full_backups = 1;             // Default: 1 (at least 1)
  std::optional<std::int64_t> incremental_window;  // seconds; nullopt = off. Default: off
  std::string incremental_window_text;
  std::int64_t incomplete_grace = 86400;  // seconds. Default: 24h (at least 1h)
  std::string incomplete_grace_text = "24h";
};

// The policy from [retention]. Config error when no rule is enabled, when min_full_backups < 1, or
// when incomplete_grace is under one hour (a running base-push must never look abandoned).
RetentionPolicy retention_policy(const Config& config);

enum class RetentionAction { Keep, Delete };
std::string_view action_name(RetentionAction a);  // "keep" | "delete"

struct BackupDecision {
  std::string label;
  std::string type;            // "full" | "incremental"
  std::string parent;
  std::uint32_t timeline = 0;
  std::string start_wal;
  std::uint64_t start_segno = 0;
  std::string stop_time;
  std::uint64_t stored_bytes = 0;
  bool restorable = false;     // WAL from start to stop segment archived
  RetentionAction action = RetentionAction::Keep;
  std::string rule;            // the first rule that decided
  std::vector<std::string> rules;  // every rule that keeps it (empty when deleted)
  std::string reason;          // one line, human
};

struct IncompleteDecision {
  std::string label;
  std::uint64_t objects = 0;
  std::uint64_t stored_bytes = 0;
  std::int64_t newest_mtime = 0;
  std::string error;           // non-empty: the manifest exists but could not be read
  RetentionAction action = RetentionAction::Keep;
  std::string rule;
  std::string reason;
};

// A run of WAL files of one kind on one timeline with the same decision.
struct WalRangeDecision {
  std::uint32_t timeline = 0;
  std::string kind;            // "segment" | "partial" | "backup-history" | "history"
  std::string first;           // file names
  std::string last;
  std::uint64_t files = 0;
  std::uint64_t stored_bytes = 0;
  RetentionAction action = RetentionAction::Keep;
  std::string rule;            // "before-oldest-kept-backup" | "needed" | "history" | "no-backups" | "blocked"
  std::vector<std::string> keys;  // storage keys (filled for deleted ranges only)
};

struct TemporaryDecision {
  std::string path;            // relative to the repository root
  std::uint64_t size = 0;
  std::int64_t mtime = 0;
  RetentionAction action = RetentionAction::Keep;
  std::string rule;            // "expired-temporary" | "grace"
};

// What plan_retention() needs beyond the inventory (filled by scan_retention_extras()).
struct RetentionExtras {
  std::set<std::string> tombstones;          // labels whose tombstone (keys::backup_tombstone) exists
  std::vector<ObjectInfo> temporaries;       // Storage::list_temporaries(); key = path under the root
};

struct RetentionPlan {
  std::int64_t now = 0;
  RetentionPolicy policy;
  std::optional<std::int64_t> window_start;  // now - window
  std::vector<BackupDecision> backups;       // oldest first
  std::vector<IncompleteDecision> incomplete;
  std::vector<WalRangeDecision> wal;         // by timeline, then kind, then position
  std::optional<std::uint64_t> wal_cutoff_segno;  // set when WAL below it is deleted
  std::string wal_cutoff;                    // segment name of the cutoff (timeline of its backup)
  std::string wal_rule;                      // why: "before-oldest-kept-backup" | "no-backups" | "blocked"
  std::string wal_reason;
  std::vector<TemporaryDecision> temporaries;

  // Totals of what is to be deleted.
  std::uint64_t backups_to_delete() const;
  std::uint64_t incomplete_to_delete() const;
  std::uint64_t wal_files_to_delete() const;
  std::uint64_t bytes_to_delete() const;
};

RetentionPlan plan_retention(const Inventory& inv, const RetentionPolicy& policy, std::int64_t now,
                             const RetentionExtras& extras = {});

// Lists tombstones (keys::backup_tombstone: written before a deleted backup's manifest is removed, so
// that a run interrupted after that is finished by the next one whatever the backup's age) and the
// storage's leftover temporary files (Storage::list_temporaries; only the fs backend has any).
RetentionExtras scan_retention_extras(Repository& repo);

struct RetentionResult {
  std::uint64_t backups_deleted = 0;
  std::uint64_t incomplete_deleted = 0;
  std::uint64_t wal_files_deleted = 0;
  std::uint64_t temporaries_deleted = 0;
  std::uint64_t bytes_freed = 0;
};

struct RetentionExecOptions {
  std::size_t batch = 1000;  // keys per remove_many() call
  // Called after each step ("manifest-delete" after a backup's manifest is removed, "bundles-delete",
  // "wal-delete" after each batch). Tests use it to simulate a crash; production passes nothing.
  std::function<void(std::string_view step)> hook;
  // Called before each deleting step (a backup's tombstone and manifest, each batch of its other objects
  // or of WAL, each temporary file); throws to stop at once. retention-prune passes its lock's check(),
  // so a run that lost its lock deletes nothing more. Default: none.
  std::function<void()> check;
};

// Deletes what the plan says, in this order: for each deleted backup (oldest first) its tombstone is
// written, its manifest removed (it vanishes from every tool at once), then its other objects; then the
// incomplete backups; then WAL (oldest first, in batches); then the WAL index objects of every segment
// below the WAL cutoff (repo/wal_index.h; also those whose segment is already gone); then temporary
// files. Every intermediate
// state is a readable repository; a failure stops at once (throws) and the next run finishes the job.
// The same holds when opts.check throws (a lost lock: Conflict), which it is asked before every step.
RetentionResult execute_retention(Repository& repo, const RetentionPlan& plan, const RetentionExecOptions& opts = {});

// Reports (common/retention/retention_report.cpp).
std::string retention_plan_text(const std::string& repository, const RetentionPlan& plan);
// {"repository", "now", "dry_run", "policy": {...}, "backups": [...], "incomplete": [...],
//  "wal": {"cutoff", "rule", "reason", "ranges": [...]}, "temporaries": [...], "plan": {totals},
//  "result": {...} (only after a run)}. Keys documented in docs/EXIT-CODES.md (retention-prune).
std::string retention_plan_json(const std::string& repository, const RetentionPlan& plan, bool dry_run,
                                const RetentionResult* result);
std::string retention_summary_line(const RetentionPlan& plan, const RetentionResult& result);


}  // namespace pgvault
