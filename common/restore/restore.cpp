#include "common/restore/restore.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/base/text.h"
#include "common/base/threads.h"
#include "common/base/time.h"
#include "common/crypto/crypto.h"

namespace pgvault {

namespace fsys = std::filesystem;

namespace {

const char* const kControlTemp = "global/pg_control.pgvault-restore";
// Ends the archive_mode line pitr-prepare writes, so a later restore (of a backup of a restored server)
// recognises it as its own; the server's own archive_mode lines are never touched.
const char* const kArchiveModeMark = "  # pitr-prepare --archive-mode off: this restore does not archive";

// Directories PostgreSQL 15 expects in a data directory even when a backup leaves them out.
const char* const kExpectedDirs[] = {
    "pg_wal",          "pg_wal/archive_status", "pg_replslot",       "pg_tblspc",         "pg_stat",
    "pg_stat_tmp",     "pg_notify",             "pg_serial",         "pg_snapshots",      "pg_subtrans",
    "pg_twophase",     "pg_commit_ts",          "pg_dynshmem",       "pg_logical",        "pg_logical/snapshots",
    "pg_logical/mappings", "pg_multixact",      "pg_multixact/members", "pg_multixact/offsets", "pg_xact",
    "global",          "base",
};

// Files of the backup that must not be restored as they are: pitr-prepare writes its own signal file and
// creates the tablespace links itself; a server's pid/opts files never belong in a restored directory.
bool skipped_file(const ManifestFile& f) {
  if (f.tablespace != 0) return false;
  static const std::set<std::string> names = {"tablespace_map", "recovery.signal", "standby.signal", "postmaster.pid",
                                              "postmaster.opts", "backup_manifest", kRestoreMarker};
  return names.count(f.path) != 0;
}

std::string shell_quote(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_/.,:=@%+-").find(c) != std::string_view::npos)) {
      plain = false;
    }
  }
  if (plain) return s;
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// A value in single quotes for postgresql.conf.
std::string conf_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else if (c == '\\') out += "\\\\";
    else out += c;
  }
  return out + "'";
}

std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string target_kind_name(TargetKind k) {
  switch (k) {
    case TargetKind::Latest: return "latest";
    case TargetKind::Immediate: return "immediate";
    case TargetKind::Time: return "time";
    case TargetKind::Lsn: return "lsn";
    case TargetKind::Xid: return "xid";
    case TargetKind::Name: return "name";
  }
  return "?";
}

std::string describe_target(const RecoveryTarget& t) {
  if (t.kind == TargetKind::Latest || t.kind == TargetKind::Immediate) return target_kind_name(t.kind);
  return target_kind_name(t.kind) + " " + t.value;
}

// The checkpoint the backup starts from ("CHECKPOINT LOCATION:" in backup_label); recovery begins there.
std::uint64_t checkpoint_lsn(const BackupManifest& b) {
  std::istringstream in(b.backup_label);
  std::string line;
  const std::string key = "CHECKPOINT LOCATION: ";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      try {
        return parse_lsn(line.substr(key.size()), "backup_label");
      } catch (const Error&) {
        break;
      }
    }
  }
  return b.start_lsn;
}

std::string mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

Error with_context(const Error& e, const std::string& context) { return Error(e.kind(), context + ": " + e.what()); }

bool dir_is_empty(const std::string& dir) {
  std::error_code ec;
  fsys::directory_iterator it(dir, ec);
  if (ec) throw Error(ErrorKind::Io, "cannot read directory " + dir + ": " + ec.message());
  return it == fsys::directory_iterator();
}

void remove_path(const std::string& path) {
  std::error_code ec;
  fsys::remove_all(path, ec);
  if (ec) throw Error(ErrorKind::Io, "cannot remove " + path + ": " + ec.message());
}

void remove_contents(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fsys::directory_iterator(dir, ec)) remove_path(e.path().string());
  if (ec) throw Error(ErrorKind::Io, "cannot read directory " + dir + ": " + ec.message());
}

void refuse_running_server(const std::string& pgdata) {
  std::ifstream in(pgdata + "/postmaster.pid");
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return;
  if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) {
    throw Error(ErrorKind::InvalidInput, pgdata + " belongs to a running server (postmaster.pid names process " +
                                             std::to_string(pid) + "); stop it first");
  }
}

// mkdir that accepts an existing directory; sets the mode either way.
void make_dir(const std::string& path, unsigned mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) throw errno_error("mkdir " + path, errno);
  if (::chmod(path.c_str(), mode & 07777) != 0) throw errno_error("chmod " + path, errno);
}

// Paths from the repository are checked when the manifest is parsed and again here, before each write;
// and every write opens its way down component by component with O_NOFOLLOW beneath its root (the data
// directory or a tablespace location), so neither a path nor a symbolic link met on the way (such as a
// pg_tblspc/<oid> link) can lead a write outside the root.
void check_restore_path(const std::string& label, const char* entry, const std::string& path, bool directory) {
  std::string why = manifest_path_problem(path, directory);
  if (!why.empty()) {
    throw Error(ErrorKind::Corruption,
                "backup " + label + ": " + entry + " path \"" + path + "\" " + why + "; refusing to write it");
  }
}

// Opens the directory `rel` ("" = the root itself) beneath `root`, creating missing components (0700)
// when `create`. A component that is a symbolic link or not a directory is Corruption.
Fd open_dir_beneath(const std::string& root, const std::string& rel, bool create) {
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw errno_error("open " + root, errno);
  Fd cur(fd);
  std::string done = root;
  std::size_t start = 0;
  while (start < rel.size()) {
    std::size_t slash = rel.find('/', start);
    std::string c = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    start = slash == std::string::npos ? rel.size() : slash + 1;
    done += "/" + c;
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int next = ::openat(cur.get(), c.c_str(), flags);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), c.c_str(), 0700) != 0 && errno != EEXIST) throw errno_error("mkdir " + done, errno);
      next = ::openat(cur.get(), c.c_str(), flags);
    }
    if (next < 0 && (errno == ELOOP || errno == ENOTDIR)) {
      throw Error(ErrorKind::Corruption, done + " is a symbolic link or not a directory: a restore never writes through one");
    }
    if (next < 0) throw errno_error("open " + done, errno);
    cur = Fd(next);
  }
  return cur;
}

// make_dir beneath `root`: the directory `rel` and any missing parent, never through a symbolic link.
void make_dir_beneath(const std::string& root, const std::string& rel, unsigned mode) {
  Fd dir = open_dir_beneath(root, rel, true);
  if (::fchmod(dir.get(), mode & 07777) != 0) throw errno_error("chmod " + root + "/" + rel, errno);
}

void fsync_tree(const std::string& root) {
  fsync_dir(root);
  std::error_code ec;
  for (auto it = fsys::recursive_directory_iterator(root, fsys::directory_options::none, ec);
       !ec && it != fsys::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) fsync_dir(it->path().string());
  }
  if (ec) throw Error(ErrorKind::Io, "cannot walk " + root + ": " + ec.message());
}

// ---- The sink that splits a bundle's plaintext into files ------------------------------------------

struct RestoreState {
  std::string label;
  std::string pgdata;
  std::map<std::uint32_t, std::string> tablespace_dirs;  // oid -> location
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> files{0};

  // Where a file goes: its root (the data directory or its tablespace's location) and the path below it.
  std::pair<std::string, std::string> dest(const ManifestFile& f) const {
    if (f.tablespace == 0) return {pgdata, f.path == "global/pg_control" ? kControlTemp : f.path};
    return {tablespace_dirs.at(f.tablespace), f.path};
  }
};

class BundleSplitter final : public Sink {
 public:
  BundleSplitter(RestoreState& st, std::vector<const ManifestFile*> files, std::string bundle)
      : st_(st), files_(std::move(files)), bundle_(std::move(bundle)) {}

  // The file being written when something failed (for messages).
  std::string current() const { return idx_ < files_.size() ? files_[idx_]->path : ""; }

  void write(ByteView data) override {
    if (st_.stop.load()) throw Error(ErrorKind::Interrupted, "stopped after another bundle failed");
    while (true) {
      settle_empty_files();
      if (data.empty()) return;
      if (idx_ >= files_.size()) {
        throw Error(ErrorKind::Corruption, bundle_ + " holds more bytes than the manifest's files (" +
                                               std::to_string(pos_ + data.size()) + " or more)");
      }
      const ManifestFile& f = *files_[idx_];
      if (pos_ < f.offset) {  // bytes between files: not expected, but not ours to interpret
        std::uint64_t n = std::min<std::uint64_t>(f.offset - pos_, data.size());
        pos_ += n;
        data = data.subspan(n);
        continue;
      }
      if (!open_) open_file(f);
      std::uint64_t n = std::min<std::uint64_t>(f.offset + f.size - pos_, data.size());
      ByteView part = data.first(n);
      hash_->update(part);
      if (fd_) write_full(fd_.get(), part, path_);
      pos_ += n;
      st_.bytes += n;
      data = data.subspan(n);
      if (pos_ == f.offset + f.size) close_file(f);
    }
  }

  void finish() override {
    settle_empty_files();
    if (idx_ < files_.size()) {
      throw Error(ErrorKind::Corruption, bundle_ + " ended after " + std::to_string(pos_) + " bytes, inside " +
                                             files_[idx_]->path + " (offset " + std::to_string(files_[idx_]->offset) +
                                             ", " + std::to_string(files_[idx_]->size) + " bytes)");
    }
  }

 private:
  RestoreState& st_;
  std::vector<const ManifestFile*> files_;  // sorted by offset
  std::string bundle_;
  std::size_t idx_ = 0;
  std::uint64_t pos_ = 0;
  bool open_ = false;
  Fd fd_;
  std::string path_;
  std::unique_ptr<FileChecksum> hash_;

  void settle_empty_files() {
    while (idx_ < files_.size() && files_[idx_]->size == 0 && pos_ >= files_[idx_]->offset) {
      open_file(*files_[idx_]);
      close_file(*files_[idx_]);
    }
  }

  void open_file(const ManifestFile& f) {
    hash_ = std::make_unique<FileChecksum>(f);
    open_ = true;
    if (skipped_file(f)) {
      path_.clear();
      fd_ = Fd();
      return;
    }
    check_restore_path(st_.label, "file", f.path, false);
    auto [root, rel] = st_.dest(f);
    path_ = root + "/" + rel;
    auto slash = rel.rfind('/');
    // Parents the manifest did not list are created; O_EXCL | O_NOFOLLOW: never through a link.
    Fd dir = open_dir_beneath(root, slash == std::string::npos ? "" : rel.substr(0, slash), true);
    std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    int fd = ::openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw errno_error("create " + path_, errno);
    fd_ = Fd(fd);
  }

  void close_file(const ManifestFile& f) {
    std::string mismatch = hash_->mismatch();  // CRC-32C (SHA-256 in format 1 manifests)
    if (!mismatch.empty()) {
      throw Error(ErrorKind::Corruption, "file " + f.path + " fails verification: " + mismatch);
    }
    if (fd_) {
      if (::fchmod(fd_.get(), f.mode & 07777) != 0) throw errno_error("chmod " + path_, errno);
      struct timespec times[2] = {{static_cast<time_t>(f.mtime), 0}, {static_cast<time_t>(f.mtime), 0}};
      if (::futimens(fd_.get(), times) != 0) throw errno_error("set mtime of " + path_, errno);
      fsync_fd(fd_.get(), path_);
      fd_.close(path_);
      st_.files++;
    }
    open_ = false;
    ++idx_;
  }
};

}  // namespace

// ---- Targets and settings ---------------------------------------------------------------------------

double parse_target_time(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorKind::InvalidInput, "--target-time \"" + text + "\": " + why +
                                              " (expected e.g. 2026-11-21 16:41:00.25+00 or 2026-11-21T16:41:00Z)");
  };
  int y, mo, d, h, mi, s, n = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*[ T]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6) {
    throw bad("not a date and time");
  }
  std::size_t i = static_cast<std::size_t>(n);
  double frac = 0;
  if (i < text.size() && text[i] == '.') {
    std::size_t j = i + 1;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i + 1) throw bad("empty fraction of a second");
    frac = std::stod("0" + text.substr(i, j - i));
    i = j;
  }
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size()) throw bad("a time zone is required");
  long offset = 0;
  if (text[i] == 'Z' || text[i] == 'z') {
    ++i;
  } else if (text[i] == '+' || text[i] == '-') {
    int sign = text[i] == '-' ? -1 : 1;
    std::string digits;
    for (std::size_t j = i + 1; j < text.size(); ++j) {
      if (text[j] == ':') continue;
      if (!std::isdigit(static_cast<unsigned char>(text[j]))) throw bad("bad time zone");
      digits += text[j];
    }
    if (digits.size() != 2 && digits.size() != 4) throw bad("bad time zone");
    int zh = std::stoi(digits.substr(0, 2)), zm = digits.size() == 4 ? std::stoi(digits.substr(2)) : 0;
    if (zh > 15 || zm > 59) throw bad("bad time zone");
    offset = sign * (zh * 3600L + zm * 60L);
    i = text.size();
  } else {
    throw bad("a time zone is required");
  }
  if (i != text.size()) throw bad("unexpected text after the time zone");
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) throw bad("out of range");
  return static_cast<double>(utc_seconds(y, mo, d, h, mi, s) - offset) + frac;
}

std::string make_restore_command(const std::string& wal_fetch, const std::string& config_path,
                                 const std::vector<std::string>& sets) {
  std::string cmd = shell_quote(wal_fetch);
  if (!config_path.empty()) cmd += " --config " + shell_quote(config_path);
  for (const auto& s : sets) cmd += " --set " + shell_quote(s);
  return cmd + " %f %p";
}

std::string recovery_settings(const RestoreOptions& opts, const RestorePlan& plan) {
  std::ostringstream o;
  o << "# Recovery settings written by pitr-prepare (pgvault) at " << now_iso8601() << " for backup "
    << plan.backup.label << "\n";
  o << "restore_command = " << conf_quote(opts.restore_command) << "\n";
  const auto& t = opts.target;
  switch (t.kind) {
    case TargetKind::Latest: break;
    case TargetKind::Immediate: o << "recovery_target = 'immediate'\n"; break;
    case TargetKind::Time: o << "recovery_target_time = " << conf_quote(t.value) << "\n"; break;
    case TargetKind::Lsn: o << "recovery_target_lsn = " << conf_quote(format_lsn(t.lsn)) << "\n"; break;
    case TargetKind::Xid: o << "recovery_target_xid = " << conf_quote(t.value) << "\n"; break;
    case TargetKind::Name: o << "recovery_target_name = " << conf_quote(t.value) << "\n"; break;
  }
  if (t.kind != TargetKind::Latest) o << "recovery_target_action = " << conf_quote(opts.target_action) << "\n";
  if (opts.exclusive) o << "recovery_target_inclusive = off\n";
  o << "recovery_target_timeline = "
    << conf_quote(opts.target_timeline == "latest" || opts.target_timeline == "current"
                      ? opts.target_timeline
                      : std::to_string(plan.target_timeline))
    << "\n";
  if (opts.archive_mode == "off") o << "archive_mode = 'off'" << kArchiveModeMark << "\n";
  return o.str();
}

std::string rewrite_auto_conf(const std::string& existing, const std::string& settings) {
  static const std::set<std::string> ours = {
      "restore_command",         "recovery_target",        "recovery_target_time",   "recovery_target_lsn",
      "recovery_target_xid",     "recovery_target_name",   "recovery_target_action", "recovery_target_timeline",
      "recovery_target_inclusive"};
  std::istringstream in(existing);
  std::string line, out;
  while (std::getline(in, line)) {
    std::size_t i = 0;
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    std::size_t j = i;
    while (j < line.size() && (std::isalnum(static_cast<unsigned char>(line[j])) || line[j] == '_' || line[j] == '.')) ++j;
    std::string key = ascii_lower(line.substr(i, j - i));
    if (ours.count(key)) continue;
    if (key == "archive_mode" && line.find(kArchiveModeMark) != std::string::npos) continue;  // an earlier restore's
    if (line.rfind("# Recovery settings written by pitr-prepare", 0) == 0) continue;
    out += line + "\n";
  }
  return out + settings;
}

// ---- Planning -----------------------------------------------------------------------------------------

RestorePlan plan_restore(Repository& repo, const Inventory& inv, const RestoreOptions& opts) {
  const RecoveryTarget& t = opts.target;
  if (opts.exclusive && t.kind != TargetKind::Time && t.kind != TargetKind::Lsn && t.kind != TargetKind::Xid) {
    throw Error(ErrorKind::InvalidInput, "--target-exclusive applies to a time, LSN or xid target only");
  }
  if (opts.target_action != "promote" && opts.target_action != "pause" && opts.target_action != "shutdown") {
    throw Error(ErrorKind::InvalidInput, "--target-action must be promote, pause or shutdown");
  }
  if (opts.archive_mode != "off" && opts.archive_mode != "preserve") {
    throw Error(ErrorKind::InvalidInput, "--archive-mode must be off or preserve, not \"" + opts.archive_mode + "\"");
  }
  std::optional<std::uint32_t> fixed_timeline;
  if (opts.target_timeline != "latest" && opts.target_timeline != "current") {
    try {
      std::size_t used = 0;
      unsigned long v = std::stoul(opts.target_timeline, &used);
      if (used != opts.target_timeline.size() || v == 0 || v > 0xFFFFFFFFul) throw std::invalid_argument("range");
      fixed_timeline = static_cast<std::uint32_t>(v);
    } catch (const std::logic_error&) {
      throw Error(ErrorKind::InvalidInput, "--target-timeline must be latest, current or a timeline number, not \"" +
                                               opts.target_timeline + "\"");
    }
  }
  // A manifest that exists but cannot be used (corrupt, unsafe paths, wrong key) is never passed over
  // silently: asked for by name, or when no other backup exists, its error is the answer.
  const IncompleteBackup* unreadable = nullptr;  // the newest one
  for (const auto& i : inv.incomplete) {
    if (!i.error.empty() && (opts.backup.empty() || i.label == opts.backup)) unreadable = &i;
  }
  if (unreadable && (inv.backups.empty() || !opts.backup.empty())) {
    throw Error(unreadable->error_kind, "backup " + unreadable->label + " cannot be restored: " + unreadable->error);
  }
  if (inv.backups.empty()) {
    throw Error(ErrorKind::NotFound, "repository " + repo.describe() + " holds no complete backup" +
                                         (inv.incomplete.empty() ? "" : " (only incomplete ones)"));
  }
  if (unreadable && opts.backup.empty() && unreadable->label > inv.backups.back().label) {
    spdlog::warn("backup {} is not considered: {}", unreadable->label, unreadable->error);
  }

  // Candidates, newest first.
  std::vector<const BackupManifest*> cands;
  if (!opts.backup.empty()) {
    for (const auto& b : inv.backups) {
      if (b.label == opts.backup) cands.push_back(&b);
    }
    if (cands.empty()) {
      bool incomplete = std::any_of(inv.incomplete.begin(), inv.incomplete.end(),
                                    [&](const IncompleteBackup& i) { return i.label == opts.backup; });
      throw Error(ErrorKind::NotFound, "backup " + opts.backup + (incomplete ? " is incomplete" : " does not exist") +
                                           " in " + repo.describe() + " (see archive-info)");
    }
  } else {
    for (auto it = inv.backups.rbegin(); it != inv.backups.rend(); ++it) {
      if (t.kind == TargetKind::Time) {
        // stop_time has whole seconds (truncated): the backup surely ended before the target only when
        // its stop second plus one is not after it.
        double stop = static_cast<double>(parse_iso8601(it->stop_time)) + 1.0;
        if (stop > t.time) continue;
      } else if (t.kind == TargetKind::Lsn) {
        if (it->stop_lsn > t.lsn) continue;
      }
      cands.push_back(&*it);
    }
    if (cands.empty()) {
      const BackupManifest& oldest = inv.backups.front();
      throw Error(ErrorKind::NotFound, "no backup ends before the target " + describe_target(t) +
                                           " (the oldest, " + oldest.label + ", ended at " + oldest.stop_time + ", " +
                                           format_lsn(oldest.stop_lsn) + ")");
    }
  }

  std::string first_refusal;
  for (const BackupManifest* b : cands) {
    if (b->type != "full") {
      // Restoring an incremental backup needs its parents' pages; this version restores full backups only.
      std::string why = "backup " + b->label + " is " + b->type + "; only full backups can be restored";
      if (!opts.backup.empty()) throw Error(ErrorKind::InvalidInput, why);
      if (first_refusal.empty()) first_refusal = why;
      continue;
    }
    std::uint32_t tt = fixed_timeline ? *fixed_timeline
                       : opts.target_timeline == "current" ? b->timeline
                                                           : latest_timeline(inv, b->timeline);
    std::vector<ChainStep> chain;
    try {
      chain = timeline_chain(inv, b->timeline, checkpoint_lsn(*b), tt);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::InvalidInput) throw;
      if (first_refusal.empty()) first_refusal = "backup " + b->label + ": " + e.what();
      continue;  // this backup is not on the target timeline's history; an older one may be
    }
    if (t.kind == TargetKind::Lsn && t.lsn < b->stop_lsn) {
      throw Error(ErrorKind::InvalidInput, "target LSN " + format_lsn(t.lsn) + " lies before the end of backup " +
                                               b->label + " (" + format_lsn(b->stop_lsn) +
                                               "): recovery cannot stop before the backup is consistent");
    }
    std::optional<std::uint64_t> end;
    if (t.kind == TargetKind::Lsn) end = t.lsn;
    if (t.kind == TargetKind::Immediate) end = b->stop_lsn > 0 ? b->stop_lsn - 1 : 0;
    std::uint64_t min_end = b->stop_lsn > 0 ? b->stop_lsn - 1 : 0;  // the stop segment holds the byte before it

    RestorePlan plan;
    plan.backup = *b;
    plan.target_timeline = tt;
    plan.wal = check_wal_path(inv, chain, b->start_lsn, end, min_end);
    plan.why = opts.backup.empty() ? "newest backup that can reach the target " + describe_target(t)
                                   : "chosen with --backup";
    if (!plan.wal.ok()) {
      std::string n = std::to_string(plan.wal.missing_all.size());
      throw Error(ErrorKind::NotFound,
                  "the archive is missing WAL segment " + *plan.wal.missing + " (" + repo.describe() + "/" +
                      *plan.wal.missing_key + "), needed to recover backup " + b->label + " to " + describe_target(t) +
                      " on timeline " + std::to_string(tt) + " (" + n + " segment" + (n == "1" ? "" : "s") +
                      " missing between " + segment_file_name(chain.front().timeline, plan.wal.first_segno, inv.wal_segment_size) +
                      " and the end); nothing was written");
    }
    // Tablespace locations.
    std::set<std::string> used;
    for (const auto& ts : b->tablespaces) {
      std::string loc = strip_slashes(ts.location);
      for (const auto& [from, to] : opts.tablespace_map) {
        if (strip_slashes(from) == loc) {
          used.insert(from);
          loc = strip_slashes(to);
        }
      }
      if (loc.empty() || loc[0] != '/') {
        throw Error(ErrorKind::InvalidInput, "tablespace " + std::to_string(ts.oid) + ": location \"" + loc +
                                                 "\" is not an absolute path");
      }
      plan.tablespaces.emplace_back(ts.oid, loc);
    }
    for (const auto& [from, to] : opts.tablespace_map) {
      if (!used.count(from)) {
        std::string have;
        for (const auto& ts : b->tablespaces) have += (have.empty() ? "" : ", ") + ts.location;
        throw Error(ErrorKind::InvalidInput, "--tablespace-map " + from + "=" + to + ": backup " + b->label +
                                                 " has no tablespace at " + from +
                                                 (have.empty() ? " (it has no tablespaces)" : " (it has: " + have + ")"));
      }
    }
    return plan;
  }
  throw Error(ErrorKind::InvalidInput, "no backup can reach the target " + describe_target(t) + " on timeline " +
                                           opts.target_timeline + ": " + first_refusal);
}

// ---- Restoring ----------------------------------------------------------------------------------------

namespace {

// What was created, to undo on failure.
struct Undo {
  std::string pgdata;
  bool created_pgdata = false;
  std::vector<std::string> remove;  // paths removed whole (tablespace dirs we created or filled)
  bool armed = true;

  void run() noexcept {
    if (!armed) return;
    std::vector<std::string> failures;
    for (const auto& p : remove) {
      std::error_code ec;
      fsys::remove_all(p, ec);
      if (ec) failures.push_back(p + ": " + ec.message());
    }
    std::error_code ec;
    if (created_pgdata) {
      fsys::remove_all(pgdata, ec);
    } else {
      for (const auto& e : fsys::directory_iterator(pgdata, ec)) {
        std::error_code ec2;
        if (e.path().filename() == kRestoreMarker) continue;
        fsys::remove_all(e.path(), ec2);
        if (ec2) failures.push_back(e.path().string() + ": " + ec2.message());
      }
      if (failures.empty()) fsys::remove(pgdata + "/" + kRestoreMarker, ec);
    }
    if (ec) failures.push_back(pgdata + ": " + ec.message());
    if (!failures.empty()) {
      spdlog::error("could not remove the partly restored files ({}); {} is NOT usable: delete it by hand",
                    failures.front(), pgdata);
    } else {
      spdlog::info("removed the partly restored files from {}", pgdata);
    }
  }
};

void write_small_file(const std::string& path, const std::string& text, unsigned mode) {
  AtomicFileWriter w(path, false, true, mode);
  w.write(as_bytes(text));
  w.commit();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}


// What step 2 found: checked before anything is changed (and by a dry run, which changes nothing).
struct DirChecks {
  std::map<std::uint32_t, std::set<std::string>> ts_tops;  // what the backup writes in each location
  bool pgdata_exists = false;
  bool pgdata_nonempty = false;  // only with --force (else an error)
};

DirChecks check_directories(const RestoreOptions& opts, const RestorePlan& plan) {
  const std::string& pgdata = opts.pgdata;
  const BackupManifest& m = plan.backup;
  DirChecks out;
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
    // Never removed, not even with --force: the location may belong to another (running) cluster.
    for (const auto& top : tops) {
      std::string p = loc + "/" + top;
      if (::access(p.c_str(), F_OK) == 0) {
        throw Error(ErrorKind::InvalidInput, "tablespace directory " + p +
                                                 " already exists; remove it or restore the tablespace elsewhere "
                                                 "with --tablespace-map " + loc + "=NEWDIR");
      }
    }
  }
  struct stat sb{};
  out.pgdata_exists = ::stat(pgdata.c_str(), &sb) == 0;
  if (!out.pgdata_exists && errno != ENOENT) throw errno_error("stat " + pgdata, errno);
  if (!out.pgdata_exists) return out;
  if (!S_ISDIR(sb.st_mode)) throw Error(ErrorKind::InvalidInput, pgdata + " exists and is not a directory");
  refuse_running_server(pgdata);
  if (dir_is_empty(pgdata)) return out;
  if (!opts.force) {
    bool interrupted = ::access((pgdata + "/" + kRestoreMarker).c_str(), F_OK) == 0;
    throw Error(ErrorKind::InvalidInput,
                pgdata + (interrupted ? " holds an unfinished pgvault restore (" + std::string(kRestoreMarker) + ")"
                                      : " is not empty") +
                    "; use --force to replace its contents");
  }
  out.pgdata_nonempty = true;
  return out;
}

}  // namespace

RestoreResult run_restore(Repository& repo, const RestoreOptions& in_opts) {
  auto t0 = std::chrono::steady_clock::now();
  RestoreOptions opts = in_opts;
  if (opts.pgdata.empty()) throw Error(ErrorKind::InvalidInput, "--pgdata is required");
  opts.pgdata = strip_slashes(fsys::absolute(opts.pgdata).lexically_normal().string());

  Inventory inv = load_inventory(repo);
  RestoreResult result;
  result.plan = plan_restore(repo, inv, opts);
  const BackupManifest& m = result.plan.backup;
  result.settings = recovery_settings(opts, result.plan);
  // ---- Step 2: the directories. Every check first (a dry run makes them too), then changes.
  const std::string& pgdata = opts.pgdata;
  DirChecks checks = check_directories(opts, result.plan);
  if (opts.dry_run) {
    if (checks.pgdata_nonempty) spdlog::warn("--force: the contents of {} would be removed", pgdata);
    for (const auto& f : m.files) {
      if (skipped_file(f)) continue;
      result.files++;
      result.bytes += f.size;
    }
    return result;
  }
  Undo undo;
  undo.pgdata = pgdata;
  std::map<std::uint32_t, std::set<std::string>>& ts_tops = checks.ts_tops;
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

  RestoreState st;
  st.label = m.label;
  st.pgdata = pgdata;
  try {
    write_small_file(pgdata + "/" + kRestoreMarker,
                     "pitr-prepare is restoring backup " + m.label + " here (started " + now_iso8601() +
                         ").\nWhile this file exists the directory is incomplete and must not be used.\n",
                     0600);

    // Tablespace locations: create them, or note what we add to them.
    for (const auto& [oid, loc] : result.plan.tablespaces) {
      st.tablespace_dirs[oid] = loc;
      if (::access(loc.c_str(), F_OK) != 0) {
        make_dirs(parent_dir(loc), 0755);
        make_dir(loc, 0700);
        undo.remove.push_back(loc);
      } else {
        for (const auto& top : ts_tops[oid]) undo.remove.push_back(loc + "/" + top);
      }
    }

    // Directories: the backup's, then those PostgreSQL expects, then the tablespace links.
    std::set<std::string> links;
    for (const auto& [oid, loc] : st.tablespace_dirs) links.insert("pg_tblspc/" + std::to_string(oid));
    for (const auto& d : m.directories) {
      check_restore_path(m.label, "directory", d.path, true);
      if (d.path == ".") continue;
      if (d.tablespace == 0) {
        if (links.count(d.path)) continue;
        make_dir_beneath(pgdata, d.path, d.mode ? d.mode : 0700);
      } else {
        auto it = st.tablespace_dirs.find(d.tablespace);
        if (it == st.tablespace_dirs.end()) {
          throw Error(ErrorKind::Corruption, "backup " + m.label + ": directory " + d.path + " belongs to tablespace " +
                                                 std::to_string(d.tablespace) + ", which the manifest does not list");
        }
        make_dir_beneath(it->second, d.path, d.mode ? d.mode : 0700);
      }
    }
    for (const char* d : kExpectedDirs) {
      std::string p = pgdata + "/" + d;
      if (::access(p.c_str(), F_OK) != 0) make_dir_beneath(pgdata, d, 0700);
    }
    for (const auto& [oid, loc] : st.tablespace_dirs) {
      std::string link = pgdata + "/pg_tblspc/" + std::to_string(oid);
      if (::symlink(loc.c_str(), link.c_str()) != 0) throw errno_error("symlink " + link + " -> " + loc, errno);
    }

    // ---- Step 3: the files, bundle by bundle, in parallel.
    std::map<std::uint64_t, std::vector<const ManifestFile*>> by_bundle;
    std::uint64_t total = 0;
    for (const auto& f : m.files) {
      if (f.tablespace != 0 && !st.tablespace_dirs.count(f.tablespace)) {
        throw Error(ErrorKind::Corruption, "backup " + m.label + ": file " + f.path + " belongs to tablespace " +
                                               std::to_string(f.tablespace) + ", which the manifest does not list");
      }
      by_bundle[f.bundle].push_back(&f);
      total += f.size;
    }
    for (auto& [idx, v] : by_bundle) {
      std::stable_sort(v.begin(), v.end(), [](const ManifestFile* a, const ManifestFile* b) { return a->offset < b->offset; });
      for (std::size_t i = 1; i < v.size(); ++i) {
        if (v[i]->offset < v[i - 1]->offset + v[i - 1]->size) {
          throw Error(ErrorKind::Corruption, "backup " + m.label + ": files " + v[i - 1]->path + " and " + v[i]->path +
                                                 " overlap in bundle " + std::to_string(idx));
        }
      }
    }
    std::vector<std::uint64_t> bundles;
    for (const auto& [idx, v] : by_bundle) bundles.push_back(idx);

    int n = opts.parallel > 0 ? opts.parallel : repo.config().backup.parallel;
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    n = std::max(1, std::min<int>(n, static_cast<int>(bundles.size())));
    repo.read_key();  // load (and verify) the key once, before the threads share the repository

    std::atomic<std::size_t> next{0};
    std::mutex mu;
    std::condition_variable cv;
    int running = n;
    std::optional<Error> first_error;
    auto worker = [&]() {
      while (!st.stop.load()) {
        std::size_t i = next.fetch_add(1);
        if (i >= bundles.size()) break;
        std::uint64_t idx = bundles[i];
        std::string key = keys::backup_bundle(m.label, idx);
        BundleSplitter sink(st, by_bundle[idx], key);
        try {
          repo.get_object(key, sink);
        } catch (const Error& e) {
          if (e.kind() == ErrorKind::Interrupted && st.stop.load()) break;
          std::string file = sink.current();
          std::string ctx = "backup " + m.label + ": " + (file.empty() ? "" : "file " + file + " (") + "bundle " +
                            base_name(key) + (file.empty() ? "" : ")");
          std::lock_guard g(mu);
          if (!first_error) first_error = with_context(e, ctx);
          st.stop = true;
          break;
        } catch (const std::exception& e) {
          std::lock_guard g(mu);
          if (!first_error) first_error = Error(ErrorKind::Internal, "backup " + m.label + ": " + e.what());
          st.stop = true;
          break;
        }
      }
      std::lock_guard g(mu);
      --running;
      cv.notify_all();
    };
    ThreadGroup threads([&] { st.stop = true; });  // on a failed start, the started workers end too
    threads.start_n(static_cast<std::size_t>(n), worker);
    {
      std::unique_lock lk(mu);
      auto last = std::chrono::steady_clock::now();
      while (running > 0) {
        cv.wait_for(lk, std::chrono::milliseconds(500));
        if (opts.progress && std::chrono::steady_clock::now() - last >= std::chrono::seconds(1)) {
          last = std::chrono::steady_clock::now();
          double secs = std::chrono::duration<double>(last - t0).count();
          std::uint64_t done = st.bytes.load();
          std::fprintf(stderr, "\rrestoring %s: %s of %s (%.0f%%), %.1f MiB/s   ", m.label.c_str(), mib(done).c_str(),
                       mib(total).c_str(), total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0,
                       static_cast<double>(done) / (1024.0 * 1024.0) / std::max(secs, 0.001));
        }
      }
    }
    threads.join();
    if (opts.progress) std::fprintf(stderr, "\r%78s\r", "");
    if (first_error) throw *first_error;

    // ---- Step 4: settings, durability, commit.
    std::string auto_conf = pgdata + "/postgresql.auto.conf";
    std::string existing = read_text_file(auto_conf);
    if (existing.empty()) existing = "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n";
    write_small_file(auto_conf, rewrite_auto_conf(existing, result.settings), 0600);
    write_small_file(pgdata + "/" + (opts.standby ? "standby.signal" : "recovery.signal"), "", 0600);
    fsync_tree(pgdata);
    for (const auto& [oid, loc] : st.tablespace_dirs) {
      fsync_tree(loc);
      fsync_dir(parent_dir(loc));
    }
    fsync_dir(parent_dir(pgdata));
    std::string control_tmp = pgdata + "/" + kControlTemp;
    std::string control = pgdata + "/global/pg_control";
    if (::access(control_tmp.c_str(), F_OK) != 0) {
      throw Error(ErrorKind::Corruption, "backup " + m.label + " has no global/pg_control");
    }
    if (::rename(control_tmp.c_str(), control.c_str()) != 0) throw errno_error("rename " + control_tmp, errno);
    fsync_dir(pgdata + "/global");
    if (::unlink((pgdata + "/" + kRestoreMarker).c_str()) != 0) throw errno_error("remove marker", errno);
    fsync_dir(pgdata);
  } catch (...) {
    undo.run();
    throw;
  }
  result.files = st.files.load();
  result.bytes = st.bytes.load();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

// ---- Reporting ----------------------------------------------------------------------------------------

std::string restore_next_command(const RestoreOptions& opts) {
  return "pg_ctl -D " + shell_quote(opts.pgdata) + " start";
}

namespace {

std::string wal_range(const RestoreResult& r, std::uint32_t seg_size) {
  const WalCheck& w = r.plan.wal;
  if (w.chain.empty()) return "";
  auto step_tli = [&](std::uint64_t s) {
    std::uint32_t tli = w.chain.front().timeline;
    for (const auto& c : w.chain) {
      if (c.begin_segno <= s) tli = c.timeline;
    }
    return tli;
  };
  return segment_file_name(step_tli(w.first_segno), w.first_segno, seg_size) + ".." +
         segment_file_name(step_tli(w.last_segno), w.last_segno, seg_size);
}
}  // namespace

std::string restore_summary_line(const RestoreResult& r, const RestoreOptions& opts) {
  const auto& b = r.plan.backup;
  std::ostringstream o;
  o << (opts.dry_run ? "would restore" : "restored") << " backup " << b.label << " (" << r.files << " files, "
    << mib(r.bytes) << ") into " << opts.pgdata;
  if (!opts.dry_run) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " in %.1f s", r.seconds);
    o << buf;
  }
  o << "; target " << describe_target(opts.target) << " on timeline " << r.plan.target_timeline << ", action "
    << opts.target_action << (opts.standby ? ", standby" : "") << "; WAL " << wal_range(r, b.wal_segment_size) << " ("
    << r.plan.wal.segments << (r.plan.wal.segments == 1 ? " segment" : " segments") << ") verified present; "
    << (opts.archive_mode == "off" ? "archive_mode off (the restored server archives nothing; --archive-mode preserve "
                                     "keeps the server's setting)"
                                   : "archive_mode preserved (the restored server archives as the backed-up one did)");
  return o.str();
}

std::string restore_summary_json(const RestoreResult& r, const RestoreOptions& opts) {
  using nlohmann::json;
  const auto& b = r.plan.backup;
  json target = {{"type", target_kind_name(opts.target.kind)}};
  if (!opts.target.value.empty()) target["value"] = opts.target.value;
  json ts = json::array();
  for (const auto& [oid, loc] : r.plan.tablespaces) ts.push_back({{"oid", oid}, {"location", loc}});
  std::string range = wal_range(r, b.wal_segment_size);
  auto dots = range.find("..");
  json j = {
      {"dry_run", opts.dry_run},
      {"backup", b.label},
      {"backup_timeline", b.timeline},
      {"pgdata", opts.pgdata},
      {"target", target},
      {"target_timeline", r.plan.target_timeline},
      {"target_action", opts.target_action},
      {"inclusive", !opts.exclusive},
      {"standby", opts.standby},
      {"archive_mode", opts.archive_mode},
      {"files", r.files},
      {"bytes", r.bytes},
      {"seconds", r.seconds},
      {"wal", {{"first", dots == std::string::npos ? "" : range.substr(0, dots)},
               {"last", dots == std::string::npos ? "" : range.substr(dots + 2)},
               {"segments", r.plan.wal.segments}}},
      {"tablespaces", ts},
      {"settings", r.settings},
      {"next_command", restore_next_command(opts)},
  };
  return j.dump() + "\n";
}

}  // namespace pgvault
