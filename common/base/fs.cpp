#include "common/base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "common/base/errors.h"

namespace pgvault {

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Fd::close(const std::string& path) {
  if (fd_ < 0) return;
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0 && errno != EINTR) throw errno_error("close " + path, errno);
}

Fd open_read(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw errno_error("open " + path, errno);
  return Fd(fd);
}

void write_full(int fd, ByteView data, const std::string& path) {
  const std::uint8_t* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("write " + path, errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void fsync_fd(int fd, const std::string& path, int (*call)(int)) {
  int rc;
  do {
    rc = call ? call(fd) : ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) throw errno_error("fsync " + path, errno);
}

void start_writeback(int fd, std::uint64_t offset, std::uint64_t bytes) {
#ifdef SYNC_FILE_RANGE_WRITE
  ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes), SYNC_FILE_RANGE_WRITE);
#else
  (void)fd, (void)offset, (void)bytes;
#endif
}

void fsync_dir(const std::string& dir) {
  int fd;
  do {
    fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw errno_error("open directory " + dir, errno);
  Fd guard(fd);
  fsync_fd(fd, dir);
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string parent_dir(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string base_name(const std::string& path) {
  auto pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

void make_dirs(const std::string& dir, unsigned mode) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorKind::Io, dir + " exists and is not a directory");
    return;
  }
  if (errno != ENOENT) throw errno_error("stat " + dir, errno);
  std::string parent = parent_dir(dir);
  if (parent != dir) make_dirs(parent, mode);
  if (::mkdir(dir.c_str(), mode) != 0) {
    if (errno == EEXIST) return;  // created concurrently
    throw errno_error("mkdir " + dir, errno);
  }
  // The umask only removes bits, so until this chmod the directory is at most as open as asked.
  if (::chmod(dir.c_str(), mode) != 0) throw errno_error("chmod " + dir, errno);
  fsync_dir(parent);
}

FileSource::FileSource(const std::string& path, std::uint64_t offset, std::optional<std::uint64_t> length)
    : path_(path), fd_(open_read(path)) {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) throw errno_error("stat " + path, errno);
  if (S_ISDIR(st.st_mode)) throw Error(ErrorKind::InvalidInput, path + " is a directory");
  size_ = static_cast<std::uint64_t>(st.st_size);
  pos_ = std::min(offset, size_);
  end_ = length ? std::min(size_, pos_ + *length) : size_;
  if (pos_ > 0 && ::lseek(fd_.get(), static_cast<off_t>(pos_), SEEK_SET) < 0) {
    throw errno_error("seek " + path, errno);
  }
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
}

std::size_t FileSource::read(std::span<std::uint8_t> buf) {
  std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end_ - pos_));
  while (want > 0) {
    ssize_t n = ::read(fd_.get(), buf.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("read " + path_, errno);
    }
    if (n == 0) {
      // The file shrank under us: never pretend that is the end of the data.
      throw Error(ErrorKind::Io, "read " + path_ + ": file was truncated while reading");
    }
    pos_ += static_cast<std::uint64_t>(n);
    return static_cast<std::size_t>(n);
  }
  return 0;
}

namespace {

// Temporary files a signal handler must remove: fixed slots (no allocation in the handler). A slot is
// claimed (state 1), filled, then published (state 2); the handler unlinks published slots only.
struct TempSlot {
  std::atomic<int> state{0};
  char path[4096];
};
constexpr std::size_t kTempSlots = 32;
TempSlot g_temp_slots[kTempSlots];

int track_temp_file(const std::string& path) {
  if (path.size() >= sizeof(TempSlot::path)) return -1;
  for (std::size_t i = 0; i < kTempSlots; ++i) {
    int expected = 0;
    if (g_temp_slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_temp_slots[i].path, path.c_str(), path.size() + 1);
      g_temp_slots[i].state.store(2);
      return static_cast<int>(i);
    }
  }
  return -1;
}

void untrack_temp_file(int slot) {
  if (slot >= 0) g_temp_slots[slot].state.store(0);
}

extern "C" void remove_temp_files_and_die(int signo) {
  for (auto& slot : g_temp_slots) {
    if (slot.state.load() == 2) ::unlink(slot.path);
  }
  ::signal(signo, SIG_DFL);
  ::raise(signo);
}

std::string temp_name_for(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, "%d.%u.%08x", static_cast<int>(::getpid()), counter++, rd());
  return parent_dir(path) + "/" + kTempPrefix + base_name(path) + "." + suffix;
}

}  // namespace

void remove_temp_files_on_signal() {
  struct sigaction sa {};
  sa.sa_handler = remove_temp_files_and_die;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
}

namespace {
// The pid in "<prefix><name>.<pid>.<counter>.<hex>", or 0.
pid_t temp_file_pid(const std::string& n) {
  if (n.rfind(kTempPrefix, 0) != 0) return 0;
  auto hex = n.find_last_of('.');
  if (hex == std::string::npos || hex < 2) return 0;
  auto counter = n.find_last_of('.', hex - 1);
  if (counter == std::string::npos || counter < 2) return 0;
  auto pid = n.find_last_of('.', counter - 1);
  if (pid == std::string::npos || pid + 1 >= counter) return 0;
  std::string digits = n.substr(pid + 1, counter - pid - 1);
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return static_cast<pid_t>(std::stol(digits));
}
}  // namespace

int remove_stale_temp_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (struct dirent* e = ::readdir(d)) {
    pid_t pid = temp_file_pid(e->d_name);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to probe)
    if (::unlinkat(::dirfd(d), e->d_name, 0) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

AtomicFileWriter::AtomicFileWriter(std::string path, bool no_replace, bool durable, unsigned mode, std::string tmp)
    : path_(std::move(path)),
      tmp_(tmp.empty() ? temp_name_for(path_) : std::move(tmp)),
      no_replace_(no_replace),
      durable_(durable) {
  // Tracked before it exists, so no signal can leave it behind; O_EXCL makes the name this call's.
  slot_ = track_temp_file(tmp_);
  int fd;
  do {
    fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int err = errno;
    untrack_temp_file(slot_);
    throw errno_error("create " + tmp_, err);
  }
  fd_ = Fd(fd);
  if (::fchmod(fd, mode) != 0) {
    int err = errno;
    abort();
    throw errno_error("chmod " + tmp_, err);
  }
  buf_.reserve(1 << 20);
}

AtomicFileWriter::~AtomicFileWriter() { abort(); }

// A durable file's pages start towards the disk as soon as they are written, while the caller produces
// the next ones, so the fsync at the commit waits for little more than the last write.
void AtomicFileWriter::put(ByteView data) {
  write_full(fd_.get(), data, tmp_);
  if (durable_) start_writeback(fd_.get(), written_, data.size());
  written_ += data.size();
}

void AtomicFileWriter::flush() {
  if (!buf_.empty()) {
    put(buf_);
    buf_.clear();
  }
}

void AtomicFileWriter::write(ByteView data) {
  if (done_) throw Error(ErrorKind::Internal, "write after commit: " + path_);
  if (buf_.size() + data.size() > buf_.capacity()) flush();
  if (data.size() >= buf_.capacity()) {
    put(data);
  } else {
    buf_.insert(buf_.end(), data.begin(), data.end());
  }
}

void AtomicFileWriter::commit() {
  if (done_) throw Error(ErrorKind::Internal, "commit twice: " + path_);
  try {
    flush();
    if (durable_) fsync_fd(fd_.get(), tmp_);
    fd_.close(tmp_);
    if (no_replace_) {
      // link() fails with EEXIST instead of replacing: the no-overwrite guarantee is atomic.
      if (::link(tmp_.c_str(), path_.c_str()) != 0) {
        int err = errno;
        if (err == EEXIST) throw Error(ErrorKind::Duplicate, path_ + " already exists");
        throw errno_error("link " + tmp_ + " to " + path_, err);
      }
      ::unlink(tmp_.c_str());
    } else if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      throw errno_error("rename " + tmp_ + " to " + path_, errno);
    }
    done_ = true;
    untrack_temp_file(slot_);
    slot_ = -1;
    if (durable_) fsync_dir(parent_dir(path_));
  } catch (...) {
    abort();
    throw;
  }
}

void AtomicFileWriter::abort() noexcept {
  if (done_) return;
  done_ = true;
  fd_ = Fd();
  ::unlink(tmp_.c_str());
  untrack_temp_file(slot_);
  slot_ = -1;
}

}  // namespace pgvault
