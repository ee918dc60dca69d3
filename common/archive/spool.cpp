#include "common/archive/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/base/errors.h"
#include "common/archive/wal_checks.h"
#include "common/base/fs.h"
#include "common/crypto/crypto.h"

namespace pgvault {

namespace {
std::string repo_hash(const std::string& repo_describe) { return to_hex(sha256(as_bytes(repo_describe))).substr(0, 16); }

std::string spool_base(const std::string& configured, const std::string& kind, const std::string& repo_describe) {
  if (!configured.empty()) return configured;
  return "/var/tmp/pgvault-" + std::to_string(::getuid()) + "/" + kind + "-" + repo_hash(repo_describe);
}
}  // namespace

std::string spool_dir(const std::string& configured, const std::string& kind, const std::string& repo_describe) {
  std::string dir = spool_base(configured, kind, repo_describe);
  make_dirs(dir, 0700);
  return dir;
}

// A record says "durable in these repositories": a configured folder shared by calls for different
// repositories (wal-push --repo a, then --repo b, or two configs) keeps each set's records apart, or
// a record of one repository would let the call for another report a file it never stored.
std::string push_spool_dir(const std::string& configured, const std::vector<std::string>& repo_describes,
                           bool create) {
  std::string joined;
  for (const auto& d : repo_describes) joined += d + "\n";
  if (repo_describes.size() == 1) joined = repo_describes.front();
  std::string dir = spool_base(configured, "push", joined);
  if (!configured.empty()) dir += (repo_describes.size() == 1 ? "/push-" : "/several-") + repo_hash(joined);
  if (create) make_dirs(dir, 0700);
  return dir;
}

std::string prefetch_spool_dir(const std::string& configured, const std::string& repo_describe,
                               std::uint64_t system_identifier, bool create) {
  std::string dir = spool_base(configured, "fetch", repo_describe) + "/" + std::to_string(system_identifier) + "-" +
                    repo_hash(repo_describe);
  if (create) make_dirs(dir, 0700);
  return dir;
}

std::vector<std::string> prefetch_spool_dirs(const std::string& configured, const std::string& repo_describe) {
  const std::string base = spool_base(configured, "fetch", repo_describe);
  const std::string suffix = "-" + repo_hash(repo_describe);
  std::vector<std::string> out;
  DIR* d = ::opendir(base.c_str());
  if (!d) return out;
  out.push_back(base);
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(base + "/" + n);
    }
  }
  ::closedir(d);
  return out;
}

FileIdentity file_identity(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw errno_error("stat " + path, errno);
  FileIdentity id;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = static_cast<unsigned long long>(st.st_size);
  id.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  id.ctime_ns = static_cast<long long>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
  return id;
}

namespace {
// Also the file identity in a prefetch record.
std::string record_text(const FileIdentity& id) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%llu %llu %llu %lld %lld", id.dev, id.ino, id.size, id.mtime_ns, id.ctime_ns);
  return buf;
}
}  // namespace

void write_push_record(const std::string& spool, const std::string& name, const FileIdentity& id, const Digest& d) {
  std::string text = record_text(id) + " " + d.hex() + "\n";
  // Not fsynced: losing a record only means the file is pushed (and found identical) once more.
  AtomicFileWriter w(spool + "/" + name + ".done", /*no_replace=*/false, /*durable=*/false, 0600);
  w.write(as_bytes(text));
  w.commit();
}

bool take_push_record(const std::string& spool, const std::string& name, const FileIdentity& id) {
  std::string path = spool + "/" + name + ".done";
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  ::unlink(path.c_str());  // used once, whatever it says
  return line.rfind(record_text(id) + " ", 0) == 0;
}

void prune_spool(const std::string& spool, long max_age_seconds) {
  DIR* d = ::opendir(spool.c_str());
  if (!d) return;
  std::time_t now = std::time(nullptr);
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n == "prefetch.lock" || n == kPushLockFile || n == kPrunedMark) continue;
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        now - st.st_mtime > max_age_seconds) {
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
  }
  ::closedir(d);
}

void prune_spool_when_due(const std::string& spool, long max_age_seconds) {
  const std::string mark = spool + "/" + kPrunedMark;
  struct stat st;
  if (::stat(mark.c_str(), &st) == 0 && std::time(nullptr) - st.st_mtime < kPruneIntervalSeconds) return;
  // Marked first: a concurrent call that finds the mark fresh leaves the pruning to this one.
  const int fd = ::open(mark.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::futimens(fd, nullptr);
    ::close(fd);
  }
  prune_spool(spool, max_age_seconds);
}

SpoolLock::SpoolLock(const std::string& spool, const char* file) {
  fd_ = ::open((spool + "/" + file).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  held_ = fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
}

SpoolLock::~SpoolLock() {
  if (fd_ >= 0) ::close(fd_);
}

void SpoolLock::write_pid() const {
  if (!held_) return;
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    spdlog::debug("cannot record the worker's pid: {}", std::strerror(errno));
  }
}

PushClaim::PushClaim(const std::string& spool, const std::string& name) : path_(spool + "/" + name + ".inflight") {
  // The file locked must still be the one at path_ (its last holder unlinks it on release).
  for (int attempt = 0; attempt < 8; ++attempt) {
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      busy_ = errno == EWOULDBLOCK;
      ::close(fd);
      return;
    }
    struct stat held, named;
    if (::fstat(fd, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      fd_ = fd;
      return;
    }
    ::close(fd);  // released and unlinked meanwhile: try the new file
  }
}

PushClaim::~PushClaim() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // before the lock goes: nobody locks an unlinked file that looks free
  ::close(fd_);
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

void write_ready(const std::string& data, const SpoolOwner& owner, const Digest& d) {
  AtomicFileWriter w(data + ".ready", false, false, 0600);
  std::string text = std::to_string(owner.system_identifier) + " " + std::to_string(owner.segment_size) + " " +
                     d.hex() + " " + std::to_string(d.size) + " " + record_text(file_identity(data)) + "\n" +
                     owner.repository + "\n";
  w.write(as_bytes(text));
  w.commit();
}

namespace {

// Why the spooled `data` may not be handed over as `name` to `owner`'s recovery; "" when it may.
std::string spool_entry_problem(const std::string& data, const WalFileName& name, const SpoolOwner& owner) {
  std::ifstream in(data + ".ready");
  std::uint64_t sysid = 0, size = 0;
  std::uint32_t seg_size = 0;
  std::string hex, identity, repository;
  if (!(in >> sysid >> seg_size >> hex >> size) || !std::getline(in >> std::ws, identity) ||
      !std::getline(in, repository)) {
    return "its record is unreadable";
  }
  if (repository != owner.repository || sysid != owner.system_identifier) {
    return "it was prefetched from " + repository + " for database system " + std::to_string(sysid);
  }
  try {
    if (record_text(file_identity(data)) != identity) return "it is not the file the worker verified";
    FileSource src(data);
    Bytes header = read_first_page(src);
    check_hand_over(header, src.file_size(), name, seg_size, owner.system_identifier, data);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Moves (renames; copies across filesystems, still atomically) the spooled `data` to `dest`.
void move_into_place(const std::string& data, const std::string& dest) {
  if (::rename(data.c_str(), dest.c_str()) == 0) return;
  if (errno != EXDEV) throw errno_error("rename " + data + " to " + dest, errno);
  FileSource src(data);
  AtomicFileWriter out(dest, false, false, 0600);
  pump(src, out);
  ::unlink(data.c_str());
}

}  // namespace

bool take_prefetched(const std::string& spool, const WalFileName& name, const std::string& dest,
                     const SpoolOwner& owner) {
  const std::string data = spool + "/" + name.name, ready = data + ".ready", inflight = data + ".inflight";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!path_exists(ready) && path_exists(inflight) && !SpoolLock(spool).held() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!path_exists(ready)) return false;
  std::string problem = spool_entry_problem(data, name, owner);
  if (problem.empty()) {
    move_into_place(data, dest);
  } else {
    spdlog::warn("prefetched {} discarded ({}); fetching it from the repository", data, problem);
    ::unlink(data.c_str());
  }
  ::unlink(ready.c_str());
  return problem.empty();
}

void clear_spool(const std::string& spool, const std::string& below) {
  DIR* d = ::opendir(spool.c_str());
  if (!d) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() < 24 || !WalFileName::parse(n.substr(0, 24))) continue;
    if (below.empty() || n.substr(0, 24) < below) ::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

void stop_prefetching(const std::string& spool) {
  clear_spool(spool, "");
  if (SpoolLock(spool).held()) return;  // no worker runs
  int fd = ::open((spool + "/" + kPrefetchStopFile).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  // The worker may have looked for the stop file just before it was written, and released its lock
  // since: then nobody else would empty the spool (the worker looks again once it let go, see
  // tidy_after_stop, which covers the other order).
  tidy_after_stop(spool);
}

void tidy_after_stop(const std::string& spool) {
  const std::string stop_file = spool + "/" + kPrefetchStopFile;
  if (!path_exists(stop_file)) return;
  SpoolLock lock(spool);
  if (!lock.held()) return;  // a worker runs: its own finish empties the spool
  clear_spool(spool, "");
  ::unlink(stop_file.c_str());
}

}  // namespace pgvault
