// The named steps of a restore, shared by the files of common/restore/ (restore.h is the contract; this
// header is not used outside this folder). run_restore() in restore.cpp calls them in this order:
//   plan_restore (plan.cpp, with target.cpp) -> check_directories, prepare_pgdata, prepare_directories
//   (prepare.cpp, with paths.cpp) -> write_bundles (write_files.cpp) -> write_recovery_files
//   (settings.cpp) -> commit (restore.cpp); Undo (undo.cpp) removes what was written when a step fails.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/base/fs.h"
#include "common/restore/restore.h"

namespace pgvault::restore_detail {

// global/pg_control is written under this name and renamed into place last (the commit point).
inline constexpr const char* kControlTemp = "global/pg_control.pgvault-restore";

// ---- target.cpp: the recovery target and the options that go with it
std::string target_kind_name(TargetKind k);
// "latest", "immediate", "time 2026-...", "lsn 0/5000060", ...
std::string describe_target(const RecoveryTarget& t);
// Checks --target-exclusive, --target-action, --archive-mode and --target-timeline (InvalidInput); returns
// the timeline number when --target-timeline names one.
std::optional<std::uint32_t> check_target_options(const RestoreOptions& opts);

// ---- paths.cpp: filesystem primitives of a restore
std::string strip_slashes(std::string p);
bool dir_is_empty(const std::string& dir);
void remove_contents(const std::string& dir);
// mkdir that accepts an existing directory; sets the mode either way.
void make_dir(const std::string& path, unsigned mode);
// Throws Corruption when a manifest path (of an `entry`: "file" or "directory") is unsafe to write.
void check_restore_path(const std::string& label, const char* entry, const std::string& path, bool directory);
// Opens the directory `rel` ("" = the root itself) beneath `root`, creating missing components (0700)
// when `create`. A component that is a symbolic link or not a directory is Corruption.
Fd open_dir_beneath(const std::string& root, const std::string& rel, bool create);
// make_dir beneath `root`: the directory `rel` and any missing parent, never through a symbolic link.
void make_dir_beneath(const std::string& root, const std::string& rel, unsigned mode);
// fsyncs `root` and every directory below it (files are fsynced when written).
void fsync_tree(const std::string& root);
// A small file written atomically and durably.
void write_small_file(const std::string& path, const std::string& text, unsigned mode);
// The file's text; "" when it cannot be read.
std::string read_text_file(const std::string& path);

// ---- undo.cpp: what was created, to remove again on failure
struct Undo {
  std::string pgdata;
  bool created_pgdata = false;
  std::vector<std::string> remove;  // paths removed whole (tablespace dirs we created or filled)

  // Leaves the data directory empty (or gone, when we created it) and the tablespace locations as they
  // were; when that fails, the marker stays and the log names the problem.
  void run() noexcept;
};

// ---- prepare.cpp: the data directory and the tablespace locations
// What the directory checks found: checked before anything is changed (and by a dry run, which changes
// nothing).
struct DirChecks {
  std::map<std::uint32_t, std::set<std::string>> ts_tops;  // what the backup writes in each location
  bool pgdata_exists = false;
  bool pgdata_nonempty = false;  // only with --force (else an error)
};
DirChecks check_directories(const RestoreOptions& opts, const RestorePlan& plan);

// Where the files of one backup go.
struct RestoreDest {
  std::string label;
  std::string pgdata;
  std::map<std::uint32_t, std::string> tablespace_dirs;  // oid -> location

  // A file's root (the data directory or its tablespace's location) and its path below it.
  std::pair<std::string, std::string> dest(const ManifestFile& f) const;
};

// Empties (--force) or creates the data directory; records in `undo` what to remove on failure.
void prepare_pgdata(const std::string& pgdata, const DirChecks& checks, Undo& undo);
// Writes the marker, creates the tablespace locations, the backup's directories, those PostgreSQL
// expects and the pg_tblspc links; returns where the files go.
RestoreDest prepare_directories(const RestorePlan& plan, const std::string& pgdata, const DirChecks& checks, Undo& undo);

// ---- write_files.cpp: the bundles, decoded in parallel and split into verified files
// Files of the backup that are never restored as they are (signal files, tablespace_map, pid files...).
bool skipped_file(const ManifestFile& f);
struct WriteTotals {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
};
WriteTotals write_bundles(Repository& repo, const BackupManifest& m, const RestoreDest& dest, const RestoreOptions& opts);

// ---- settings.cpp: postgresql.auto.conf and the signal file
void write_recovery_files(const RestoreOptions& opts, const std::string& settings);

}  // namespace pgvault::restore_detail
