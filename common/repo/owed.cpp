// The owed queue (owed.h): one folder per repository, one small file per owed WAL file.
#include "common/repo/owed.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/pg/wal.h"
#include "common/repo/local_state.h"

namespace pgvault {

namespace {

// The back-off file (owed.h); skipped by entry_name.
constexpr const char* kRetryAfterFile = ".retry-after";

std::string queue_dir(const Config& config, bool create) {
  return local_state_base(config.push.owed_dir, "owed", create) + "/" + repository_state_name(config.repository);
}

// Only WAL file names are entries; anything else found there is skipped with a warning (never trusted
// as a name to read or push). Temporary files of an interrupted add() are skipped quietly.
bool entry_name(const std::string& dir, const std::string& n) {
  if (n == "." || n == ".." || n == kRetryAfterFile || n.rfind(kTempPrefix, 0) == 0) return false;
  auto w = WalFileName::parse(n);
  if (w && w->name == n) return true;
  spdlog::warn("owed queue {}: ignoring {} (not a WAL file name)", dir, n);
  return false;
}

std::int64_t read_since(const std::string& path) {
  std::ifstream in(path);
  std::int64_t since = 0;
  if (in >> since && since > 0) return since;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return static_cast<std::int64_t>(st.st_mtime);
  return 0;
}

std::vector<OwedEntry> list_dir(const std::string& dir) {
  std::vector<OwedEntry> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    throw errno_error("open owed queue " + dir, errno);
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (entry_name(dir, n)) out.push_back({n, read_since(dir + "/" + n)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const OwedEntry& a, const OwedEntry& b) { return a.name < b.name; });
  return out;
}

void require_wal_name(const std::string& dir, const std::string& name) {
  auto w = WalFileName::parse(name);
  if (!w || w->name != name) throw Error(ErrorKind::InvalidInput, "owed queue " + dir + ": \"" + name + "\" is not a WAL file name");
}

}  // namespace

OwedStatus owed_status(const Config& config) {
  OwedStatus s;
  s.repository = config.repository.name;
  auto entries = list_dir(queue_dir(config, false));
  s.segments = entries.size();
  for (const auto& e : entries) {
    if (!s.oldest_since || e.since < *s.oldest_since) s.oldest_since = e.since;
  }
  return s;
}

bool is_owed(const Config& config, const std::string& name) {
  struct stat st;
  return ::stat((queue_dir(config, false) + "/" + name).c_str(), &st) == 0;
}

OwedQueue::OwedQueue(const Config& config) : dir_(queue_dir(config, true)) {}

void OwedQueue::add(const std::string& name, std::int64_t since) {
  require_wal_name(dir_, name);
  make_dirs(dir_, 0700);
  const std::string text = std::to_string(since) + "\n";
  AtomicFileWriter w(dir_ + "/" + name, /*no_replace=*/true, /*durable=*/true, 0600);
  w.write(as_bytes(text));
  try {
    w.commit();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Duplicate) throw;  // owed already: the first `since` stays
  }
}

void OwedQueue::remove(const std::string& name) {
  require_wal_name(dir_, name);
  const std::string path = dir_ + "/" + name;
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return;
    throw errno_error("remove " + path, errno);
  }
  fsync_dir(dir_);
}

std::vector<OwedEntry> OwedQueue::list() const { return list_dir(dir_); }

bool OwedQueue::empty() const {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) {
    if (errno == ENOENT) return true;
    throw errno_error("open owed queue " + dir_, errno);
  }
  bool found = false;
  while (!found) {
    struct dirent* e = ::readdir(d);
    if (!e) break;
    found = entry_name(dir_, e->d_name);
  }
  ::closedir(d);
  return !found;
}

std::optional<std::int64_t> OwedQueue::retry_after() const {
  std::ifstream in(dir_ + "/" + kRetryAfterFile);
  std::int64_t when = 0;
  if (in >> when && when > 0) return when;
  return std::nullopt;
}

void OwedQueue::set_retry_after(std::int64_t when) {
  make_dirs(dir_, 0700);
  const std::string text = std::to_string(when) + "\n";
  AtomicFileWriter w(dir_ + "/" + kRetryAfterFile, /*no_replace=*/false, /*durable=*/false, 0600);
  w.write(as_bytes(text));
  w.commit();
}

void OwedQueue::clear_retry_after() {
  const std::string path = dir_ + "/" + kRetryAfterFile;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw errno_error("remove " + path, errno);
}

}  // namespace pgvault
