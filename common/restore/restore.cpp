// run_restore: the steps of restore.h in order (plan, directories, files, settings, commit); the steps
// themselves live in the files named in restore_steps.h.
#include "common/restore/restore.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

#include "common/base/errors.h"
#include "common/base/fs_sync.h"
#include "common/restore/restore_steps.h"

namespace pgvault {

using namespace restore_detail;

namespace {

RestoreOptions with_absolute_pgdata(const RestoreOptions& in) {
  RestoreOptions opts = in;
  if (opts.pgdata.empty()) throw Error(ErrorKind::InvalidInput, "--pgdata is required");
  opts.pgdata = strip_slashes(std::filesystem::absolute(opts.pgdata).lexically_normal().string());
  return opts;
}

// A dry run: what would be written, from the manifest.
void count_dry_run(RestoreResult& result, const DirChecks& checks, const RestoreOptions& opts) {
  if (checks.pgdata_nonempty) spdlog::warn("--force: the contents of {} would be removed", opts.pgdata);
  result.plan.backup.require_files("counting a dry run");
  for (const auto& f : result.plan.backup.files) {
    if (skipped_file(f)) continue;
    result.files++;
    result.bytes += f.size;
  }
}

// Opens each location before the first file is written there: where syncfs reports write-back errors,
// its files are made durable by one syncfs at the commit instead of an fsync each.
void watch_locations(FilesystemSync& sync, const RestoreDest& dest) {
  bool all = sync.add(dest.pgdata);
  for (const auto& [oid, loc] : dest.tablespace_dirs) all = sync.add(loc) && all;
  spdlog::debug("restore durability: {}",
                all ? "one syncfs per filesystem at the end" : "an fsync per file in some or all locations");
}

// Durability, then the commit point: every file and directory is durable (one syncfs per filesystem
// where FilesystemSync covers the location, else each file was fsynced when written and every directory
// is fsynced here), and only then global/pg_control is renamed into place (without it PostgreSQL refuses
// to start) and the marker removed. A write-back error throws before the rename.
void commit(const RestoreDest& dest, FilesystemSync& sync) {
  const std::string& pgdata = dest.pgdata;
  sync.sync();
  if (!sync.covers(pgdata)) fsync_tree(pgdata);
  for (const auto& [oid, loc] : dest.tablespace_dirs) {
    if (!sync.covers(loc)) fsync_tree(loc);
    fsync_dir(parent_dir(loc));
  }
  fsync_dir(parent_dir(pgdata));
  std::string control_tmp = pgdata + "/" + kControlTemp;
  std::string control = pgdata + "/global/pg_control";
  if (::access(control_tmp.c_str(), F_OK) != 0) {
    throw Error(ErrorKind::Corruption, "backup " + dest.label + " has no global/pg_control");
  }
  if (::rename(control_tmp.c_str(), control.c_str()) != 0) throw errno_error("rename " + control_tmp, errno);
  fsync_dir(pgdata + "/global");
  if (::unlink((pgdata + "/" + kRestoreMarker).c_str()) != 0) throw errno_error("remove marker", errno);
  fsync_dir(pgdata);
}

}  // namespace

RestoreResult run_restore(Repository& repo, const RestoreOptions& in_opts) {
  auto t0 = std::chrono::steady_clock::now();
  const RestoreOptions opts = with_absolute_pgdata(in_opts);
  Inventory inv = load_inventory(repo);
  RestoreResult result;
  result.plan = plan_restore(repo, inv, opts);
  result.settings = recovery_settings(opts, result.plan);
  DirChecks checks = check_directories(opts, result.plan);
  if (opts.dry_run) {
    count_dry_run(result, checks, opts);
    return result;
  }
  Undo undo;
  prepare_pgdata(opts.pgdata, checks, undo);
  try {
    RestoreDest dest = prepare_directories(result.plan, opts.pgdata, checks, undo);
    FilesystemSync sync;
    watch_locations(sync, dest);
    WriteTotals written = result.plan.chain.empty() ? write_bundles(repo, result.plan.backup, dest, opts)
                                                    : write_chain(repo, result.plan, dest, opts);
    write_recovery_files(opts, result.settings);
    commit(dest, sync);
    result.files = written.files;
    result.bytes = written.bytes;
  } catch (...) {
    undo.run();
    throw;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace pgvault
