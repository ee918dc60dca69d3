// The directories: every check first (a dry run makes them too), then the changes. A non-empty data
// directory is refused unless --force (a running server's even then); in a tablespace location, the
// directories the backup writes must not exist, even with --force.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <fstream>

#include "common/base/errors.h"
#include "common/repo/repo.h"
#include "common/restore/restore_steps.h"

namespace pgvault::restore_detail {

namespace {

// Directories PostgreSQL 15 expects in a data directory even when a backup leaves them out.
const char* const kExpectedDirs[] = {
    "pg_wal",          "pg_wal/archive_status", "pg_replslot",       "pg_tblspc",         "pg_stat",
    "pg_stat_tmp",     "pg_notify",             "pg_serial",         "pg_snapshots",      "pg_subtrans",
    "pg_twophase",     "pg_commit_ts",          "pg_dynshmem",       "pg_logical",        "pg_logical/snapshots",
    "pg_logical/mappings", "pg_multixact",      "pg_multixact/members", "pg_multixact/offsets", "pg_xact",
    "global",          "base",
};

void refuse_running_server(const std::string& pgdata) {
  std::ifstream in(pgdata + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return;
  if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) {
    throw Error(ErrorKind::InvalidInput, pgdata + " belongs to a running server (postmaster.pid names process " +
                                             std::to_string(pid) + "); stop it first");
  }
}

// The top directories the backup writes in each tablespace location; none may exist yet (never removed,
// not even with --force: the location may belong to another, running, cluster).
void check_tablespace_locations(const RestoreOptions& opts, const RestorePlan& plan, DirChecks& out) {
  const std::string& pgdata = opts.pgdata;
  const BackupManifest& m = plan.backup;
  m.require_files("checking the tablespace locations");
  for (const auto& [oid, loc] : plan.tablespaces) {
    if (loc == pgdata || loc.rfind(pgdata + "/", 0) == 0) {
      throw Error(ErrorKind::InvalidInput, "tablespace " + std::to_string(oid) + " location " + loc +
                                               " is inside the data directory");
    }
    auto& tops = out.ts_tops[oid];
    for (const auto& d : m.directories) {
      if (d.tablespace == oid) tops.insert(d.path.substr(0, d.path.find('/')));
    }
    for (const auto& f : m.files) {
      if (f.tablespace == oid) tops.insert(f.path.substr(0, f.path.find('/')));
    }
    tops.erase("");
    tops.erase(".");
    for (const auto& top : tops) {
      std::string p = loc + "/" + top;
      if (::access(p.c_str(), F_OK) == 0) {
        throw Error(ErrorKind::InvalidInput, "tablespace directory " + p +
                                                 " already exists; remove it or restore the tablespace elsewhere "
                                                 "with --tablespace-map " + loc + "=NEWDIR");
      }
    }
  }
}

void check_pgdata(const RestoreOptions& opts, DirChecks& out) {
  const std::string& pgdata = opts.pgdata;
  struct stat sb{};
  out.pgdata_exists = ::stat(pgdata.c_str(), &sb) == 0;
  if (!out.pgdata_exists && errno != ENOENT) throw errno_error("stat " + pgdata, errno);
  if (!out.pgdata_exists) return;
  if (!S_ISDIR(sb.st_mode)) throw Error(ErrorKind::InvalidInput, pgdata + " exists and is not a directory");
  refuse_running_server(pgdata);
  if (dir_is_empty(pgdata)) return;
  if (!opts.force) {
    bool interrupted = ::access((pgdata + "/" + kRestoreMarker).c_str(), F_OK) == 0;
    throw Error(ErrorKind::InvalidInput,
                pgdata + (interrupted ? " holds an unfinished pgvault restore (" + std::string(kRestoreMarker) + ")"
                                      : " is not empty") +
                    "; use --force to replace its contents");
  }
  out.pgdata_nonempty = true;
}

void write_marker(const std::string& pgdata, const std::string& label) {
  write_small_file(pgdata + "/" + kRestoreMarker,
                   "pitr-prepare is restoring backup " + label + " here (started " + now_iso8601() +
                       ").\nWhile this file exists the directory is incomplete and must not be used.\n",
                   0600);
}

// Tablespace locations: create them, or note what we add to them.
void prepare_tablespace_locations(const RestorePlan& plan, const DirChecks& checks, RestoreDest& dest, Undo& undo) {
  for (const auto& [oid, loc] : plan.tablespaces) {
    dest.tablespace_dirs[oid] = loc;
    if (::access(loc.c_str(), F_OK) != 0) {
      make_dirs(parent_dir(loc), 0755);
      make_dir(loc, 0700);
      undo.remove.push_back(loc);
    } else {
      auto tops = checks.ts_tops.find(oid);
      if (tops == checks.ts_tops.end()) continue;
      for (const auto& top : tops->second) undo.remove.push_back(loc + "/" + top);
    }
  }
}

// The backup's directories (beneath their roots), then those PostgreSQL expects, then the tablespace links.
void make_directories(const BackupManifest& m, const RestoreDest& dest) {
  std::set<std::string> links;
  for (const auto& [oid, loc] : dest.tablespace_dirs) links.insert("pg_tblspc/" + std::to_string(oid));
  for (const auto& d : m.directories) {
    check_restore_path(m.label, "directory", d.path, true);
    if (d.path == ".") continue;
    if (d.tablespace == 0) {
      if (links.count(d.path)) continue;
      make_dir_beneath(dest.pgdata, d.path, d.mode ? d.mode : 0700);
      continue;
    }
    auto it = dest.tablespace_dirs.find(d.tablespace);
    if (it == dest.tablespace_dirs.end()) {
      throw Error(ErrorKind::Corruption, "backup " + m.label + ": directory " + d.path + " belongs to tablespace " +
                                             std::to_string(d.tablespace) + ", which the manifest does not list");
    }
    make_dir_beneath(it->second, d.path, d.mode ? d.mode : 0700);
  }
  for (const char* d : kExpectedDirs) {
    std::string p = dest.pgdata + "/" + d;
    if (::access(p.c_str(), F_OK) != 0) make_dir_beneath(dest.pgdata, d, 0700);
  }
  for (const auto& [oid, loc] : dest.tablespace_dirs) {
    std::string link = dest.pgdata + "/pg_tblspc/" + std::to_string(oid);
    if (::symlink(loc.c_str(), link.c_str()) != 0) throw errno_error("symlink " + link + " -> " + loc, errno);
  }
}

}  // namespace

DirChecks check_directories(const RestoreOptions& opts, const RestorePlan& plan) {
  DirChecks out;
  check_tablespace_locations(opts, plan, out);
  check_pgdata(opts, out);
  return out;
}

std::pair<std::string, std::string> RestoreDest::dest(const ManifestFile& f) const {
  if (f.tablespace == 0) return {pgdata, f.path == "global/pg_control" ? kControlTemp : f.path};
  return {tablespace_dirs.at(f.tablespace), f.path};
}

void prepare_pgdata(const std::string& pgdata, const DirChecks& checks, Undo& undo) {
  undo.pgdata = pgdata;
  if (checks.pgdata_exists) {
    if (checks.pgdata_nonempty) {
      spdlog::warn("--force: removing the contents of {}", pgdata);
      remove_contents(pgdata);
    }
  } else {
    make_dirs(parent_dir(pgdata), 0755);
    make_dir(pgdata, 0700);
    undo.created_pgdata = true;
  }
  if (::chmod(pgdata.c_str(), 0700) != 0) throw errno_error("chmod " + pgdata, errno);
}

RestoreDest prepare_directories(const RestorePlan& plan, const std::string& pgdata, const DirChecks& checks,
                                Undo& undo) {
  RestoreDest dest;
  dest.label = plan.backup.label;
  dest.pgdata = pgdata;
  write_marker(pgdata, plan.backup.label);
  prepare_tablespace_locations(plan, checks, dest, undo);
  make_directories(plan.backup, dest);
  return dest;
}

}  // namespace pgvault::restore_detail
