// backup-copy: copies complete backups (an incremental with its chain, parents first) and the WAL each
// needs from one repository to another, without the database.
//
// What a backup needs: its bundles, the server's backup_manifest when the source has one, its marks
// (repo/marks.h: kept, annotations) when it has them, as they are at the source when it is copied (later
// changes are each repository's), its manifest (LAST: the commit point), every WAL segment from its
// start to its stop segment (following its timeline's history), the history files of those timelines,
// and the WAL index object of each segment where the source has one.
//
// Every object is read verified (decoded: SHA-256, AEAD tag; a bundle also file by file against the
// manifest, a WAL segment by its page header against the identity) and written into the destination
// with the destination's settings and key: re-encoded, or, when the source's key and compression are the
// destination's, its stored bytes copied as they are after the same verification (copy_object.h says
// when that is exact). The decoded bytes stream from the reader into the writer (memory bounded
// whatever the object size); an object whose verification fails is never committed at the destination.
//
// Parallel: the objects of a backup (and the WAL before it) are copied [backup] parallel at once (0: the
// number of cores), taken in plan order; a backup's manifest is written alone, after every object before
// it is committed. Memory: per worker one 8 MiB pipe, one decoder and one encoder (zstd contexts, a few
// MiB) and the destination's upload buffer (s3: up to upload_parallel + 1 parts of part_size), so about
// parallel x (12 MiB + (upload_parallel + 1) x part_size) at most.
//
// Interrupted runs: bundles written before the manifest are an incomplete backup at the destination
// (invisible); the next run writes them again (plain puts overwrite) and then the manifest.
// retention-prune's incomplete_grace collects them like base-push's leftovers when no run finishes it.
// The first failure of a worker stops the others from starting another object; the run throws it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/repo/inventory.h"
#include "common/repo/repo.h"

namespace pgvault {

// One object to copy, in plan order.
struct CopyStep {
  enum class Kind { History, Wal, WalIndex, Bundle, ServerManifest, Marks, Manifest };
  Kind kind = Kind::Wal;
  std::string key;
  std::string label;             // the backup the step belongs to
  std::uint64_t stored_size = 0; // at the source (progress), 0 when unknown
  bool at_destination = false;   // WAL and history: the destination holds it (checked: same content)
};
std::string copy_step_kind_name(CopyStep::Kind k);  // "history", "wal", "wal-index", "bundle", "marks", ...

// A backup that is not copied because its label (or a chain member's) is taken at the destination.
struct CopyConflict {
  std::string label;
  std::string reason;
};

struct CopyPlan {
  std::vector<std::string> labels;  // backups to copy, oldest first (a parent before its child)
  std::vector<std::string> present; // asked for (or chain members) but already complete at the destination
  std::vector<CopyConflict> conflicts;  // not copied: the label is another backup's at the destination
  std::vector<CopyStep> steps;      // each backup: history, WAL (+ index), bundles, server manifest, manifest
};

// Labels of the source that cannot be written at the destination, with why: an incomplete backup there
// that is not an interrupted copy of the same backup (a base-push running or interrupted under the same
// label, or a manifest that cannot be read).
using CopyBlocked = std::map<std::string, std::string>;

// Plans the copy from `src` to `dst` (inventories: manifests read and verified). `label`: one backup
// (NotFound when the source has no complete backup by that name), else every complete backup of the
// source that the destination lacks. A backup of the destination counts as present only when it is the
// same backup (its manifest the source's, but for stored sizes); when the label of a backup to copy or
// of a member of its chain is another backup's at the destination, or `blocked`, the backup is not
// copied: with `label` a Conflict error naming both, else an entry in `conflicts` (the rest is copied). Every backup to copy brings its chain's members the destination
// lacks (a broken chain throws its problem's kind, naming it) and its WAL (NotFound naming the first
// segment or history file the source lacks). `src_wal_indexes`: the keys under walindex/ at the source;
// `server_manifests`: labels whose folder holds a backup_manifest at the source.
CopyPlan plan_backup_copy(const Inventory& src, const Inventory& dst, const std::optional<std::string>& label,
                          const std::set<std::string>& src_wal_indexes, const std::set<std::string>& server_manifests,
                          const CopyBlocked& blocked = {});

struct CopyOptions {
  std::optional<std::string> label;  // --backup LABEL
  bool progress = false;              // a progress line on stderr
  // Called after each object is written at the destination (tests: a crash half-way); from the workers,
  // one call at a time.
  std::function<void(const CopyStep&)> after_step;
};

struct CopyResult {
  std::string from, to;  // Repository::describe()
  CopyPlan plan;
  std::uint64_t objects = 0;       // objects written at the destination
  std::uint64_t bytes = 0;         // plaintext bytes copied
  std::uint64_t wal_present = 0;   // WAL and history objects the destination already held (same content)
  double seconds = 0;
};

// Copies by plan_backup_copy. The destination must exist (require_initialised); its identity is created
// from the source's when absent, and a destination of another system is refused (Foreign). Each
// backup's label is claimed at the destination before its objects are written (claim_label_for_copy)
// and checked to be still this run's before its manifest (else Conflict, nothing committed). A WAL or
// history object the destination holds with other content is a Duplicate error naming both digests; an
// object the source cannot give verified is a Corruption (or NotFound) error naming it. Interrupted on
// SIGINT/SIGTERM after install_interrupt_handlers().
CopyResult run_backup_copy(Repository& src, Repository& dst, const CopyOptions& opts);

// The summary: text lines, or one JSON object (docs in the tool's --help and README).
std::string copy_summary_text(const CopyResult& r);
std::string copy_summary_json(const CopyResult& r);
// Throws Conflict naming the first backup the run did not copy (plan.conflicts) and how many; nothing
// when every backup was copied or present. The tool calls it after the summary.
void throw_if_not_copied(const CopyResult& r);

// The copy hook from PGVAULT_TEST_COPY_CRASH_AFTER (test-only): =<n>: _exit(9) after the n-th object
// written; =<kind> (copy_step_kind_name, e.g. "bundle"): after the first object of that kind. Empty when
// unset.
std::function<void(const CopyStep&)> copy_test_hook();

}  // namespace pgvault
