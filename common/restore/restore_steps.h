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
// Creates (O_EXCL) or opens for writing the file `rel` beneath `root`, never through a symbolic link;
// `create` also creates missing parent directories (0700).
Fd open_file_beneath(const std::string& root, const std::string& rel, bool create);
// The size of the open file `fd` (`path` for messages).
std::uint64_t size_of(int fd, const std::string& path);
// The file's mode and mtime from its manifest entry, then close: fsynced first, unless its filesystem is
// one the restore's FilesystemSync makes durable at the commit (common/base/fs_sync.h).
void finish_file(Fd& fd, const ManifestFile& f, const std::string& path);
// make_dir beneath `root`: the directory `rel` and any missing parent, never through a symbolic link.
void make_dir_beneath(const std::string& root, const std::string& rel, unsigned mode);
// fsyncs `root` and every directory below it (files are fsynced when written): for a location that
// FilesystemSync does not cover.
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
// Inside a catch block reading bundle `key` of backup `label`: rethrows the error (its kind kept) naming
// the backup, the bundle and the file being written ("" between files).
[[noreturn]] void rethrow_in_bundle(const std::string& label, const std::string& key, const std::string& file);
struct WriteTotals {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
};
WriteTotals write_bundles(Repository& repo, const BackupManifest& m, const RestoreDest& dest, const RestoreOptions& opts);

// ---- chain_plan.cpp / chain_write.cpp: an incremental backup, reconstructed from its chain
// The ancestors of `b`, its full backup first (empty when b is full). A broken chain (chain.h) is thrown
// when `named` (chosen with --backup), else returned as nullopt with `refusal` set (an older backup may serve).
std::optional<std::vector<BackupManifest>> restorable_chain(const Inventory& inv, const BackupManifest& b, bool named,
                                                            std::string& refusal);
// One file of the newest backup and the pieces it is rebuilt from: the base (a "full" entry of backup
// `first` of the chain) and the "blocks" entries after it, up to backup `last` (chain indexes, oldest
// first; "unchanged" entries have no piece).
struct FilePieces {
  const ManifestFile* target = nullptr;  // the newest backup's entry: path, mode, mtime, size
  std::size_t first = 0;
  std::size_t last = 0;
};
struct Piece {
  const ManifestFile* entry = nullptr;  // a "full" or "blocks" entry of one backup of the chain
  std::size_t file = 0;                 // index in ChainPieces::files
};
struct ChainPieces {
  std::vector<const BackupManifest*> chain;  // oldest (the full backup) first
  std::vector<FilePieces> files;
  // Per backup of the chain: the pieces to read, by bundle (bundles without any are not read).
  std::vector<std::map<std::uint64_t, std::vector<Piece>>> reads;
  std::uint64_t bytes = 0;  // bundle bytes of all pieces
};
// Corruption naming the backup and file when an entry's chain does not end in a "full" entry, or a file
// of the newest backup is a server INCREMENTAL.* file or lies in a tablespace the manifest does not list.
ChainPieces plan_pieces(const std::vector<const BackupManifest*>& chain, const RestoreDest& dest);
// Writes every file of plan.backup from its chain: backups newest first, each one's bundles in parallel,
// every block written once (chain_compose.h); then backup_label (the newest backup's, without "INCREMENTAL FROM" lines).
WriteTotals write_chain(Repository& repo, const RestorePlan& plan, const RestoreDest& dest, const RestoreOptions& opts);
// backup_label text without the lines PostgreSQL 17 adds to an incremental backup's label
// ("INCREMENTAL FROM LSN:", "INCREMENTAL FROM TLI:"): the restored directory is a full one.
std::string label_without_incremental_lines(const std::string& label);

// ---- settings.cpp: postgresql.auto.conf and the signal file
void write_recovery_files(const RestoreOptions& opts, const std::string& settings);

}  // namespace pgvault::restore_detail
