#include "common/base/fs_sync.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>

#include "common/base/errors.h"

namespace pgvault {

namespace {

// Files at least this large start their write-back as soon as they are written; small ones are left to
// the kernel, which batches them better (measured: tests/bench/results/restore-sync.md).
constexpr std::uint64_t kEarlyWritebackBytes = 1 << 20;

int real_syncfs(int fd) {
#ifdef __linux__
  return ::syncfs(fd);
#else
  (void)fd;
  errno = ENOSYS;
  return -1;
#endif
}

// Linux >= 5.8: syncfs() returns write-back errors recorded on the filesystem since the descriptor was
// opened (errseq on the superblock); before, it returned 0 whatever happened.
bool kernel_reports_syncfs_errors() {
  static const bool yes = [] {
    struct utsname u {};
    int major = 0, minor = 0;
    if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return std::string(u.sysname) == "Linux" && (major > 5 || (major == 5 && minor >= 8));
  }();
  return yes;
}

// The filesystems (devices) whose written files the current FilesystemSync makes durable.
std::mutex g_mu;
std::vector<dev_t> g_devices;

bool device_deferred(dev_t dev) {
  std::lock_guard g(g_mu);
  return std::find(g_devices.begin(), g_devices.end(), dev) != g_devices.end();
}

}  // namespace

SyncCalls& sync_calls() {
  static SyncCalls calls{::fsync, real_syncfs, syncfs_reports_errors, start_writeback};
  return calls;
}

bool syncfs_reports_errors(int fd) {
  if (!kernel_reports_syncfs_errors()) return false;
  struct statfs sf {};
  if (::fstatfs(fd, &sf) != 0) return false;
  // ext4 (also ext2/3), xfs, btrfs: their sync_fs writes everything back and commits the journal.
  const auto type = static_cast<unsigned long>(sf.f_type);
  return type == 0xEF53UL || type == 0x58465342UL || type == 0x9123683EUL;
}

FilesystemSync::~FilesystemSync() {
  std::lock_guard g(g_mu);
  for (const auto& loc : locations_) std::erase(g_devices, loc.dev);
}

bool FilesystemSync::add(const std::string& root) {
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw errno_error("open " + root, errno);
  Fd dir(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw errno_error("stat " + root, errno);
  for (auto& loc : locations_) {
    if (loc.dev != st.st_dev) continue;
    loc.roots += ", " + root;
    covered_.push_back(root);
    return true;
  }
  if (!sync_calls().syncfs_reports_errors(fd)) return false;
  {
    std::lock_guard g(g_mu);
    if (std::find(g_devices.begin(), g_devices.end(), st.st_dev) != g_devices.end()) {
      throw Error(ErrorKind::Internal, "two filesystem syncs at once for " + root);
    }
    g_devices.push_back(st.st_dev);
  }
  locations_.push_back(Location{root, st.st_dev, std::move(dir)});
  covered_.push_back(root);
  return true;
}

bool FilesystemSync::covers(const std::string& root) const {
  return std::find(covered_.begin(), covered_.end(), root) != covered_.end();
}

void FilesystemSync::sync() {
  for (const auto& loc : locations_) {
    int rc;
    do {
      rc = sync_calls().syncfs(loc.fd.get());
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      int err = errno;
      throw Error(ErrorKind::Io, "syncfs of the filesystem holding " + loc.roots + " failed (" +
                                     std::strerror(err) + "): data written there may not be durable");
    }
  }
}

void WritebackAhead::wrote(int fd, std::uint64_t n) {
  written_ += n;
  if (written_ - started_ < kStep) return;
  const std::uint64_t upto = written_ - written_ % kStep;
  sync_calls().writeback(fd, started_, upto - started_);
  started_ = upto;
}

bool sync_deferred(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && device_deferred(st.st_dev);
}

void sync_written_file(int fd, const std::string& path, std::uint64_t size) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw errno_error("stat " + path, errno);
  if (device_deferred(st.st_dev)) {
    if (size >= kEarlyWritebackBytes) sync_calls().writeback(fd, 0, 0);
    return;
  }
  fsync_fd(fd, path, sync_calls().fsync);
}

}  // namespace pgvault
