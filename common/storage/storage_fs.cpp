#include "common/storage/storage_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "common/base/errors.h"
#include "common/base/fs.h"

namespace pgvault {
namespace {

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string first_line_of(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

bool all_of_class(std::string_view s, const char* chars) {
  return !s.empty() && s.find_first_not_of(chars) == std::string_view::npos;
}

// True unless `pid` provably no longer exists on this host (kill(pid, 0) says ESRCH).
bool pid_may_live(long pid) {
  if (pid <= 0) return true;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

// About one put in 16 sweeps the directory it writes to; chosen by the key so it needs no state and
// keeps wal-push's hot path free of directory listings on the other 15.
bool sweep_due(const std::string& key) { return fnv1a(key) % 16 == 0; }

bool valid_key(const std::string& key) {
  bool bad = key.empty() || key.front() == '/' || key.find("//") != std::string::npos;
  std::size_t start = 0;
  while (!bad && start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string part = key.substr(start, end - start);
    if (part == "." || part == ".." || part.rfind(kTempPrefix, 0) == 0) bad = true;
    start = end + 1;
  }
  return !bad;
}

void check_key(const std::string& key) {
  if (!valid_key(key)) throw Error(ErrorKind::Internal, "invalid storage key \"" + key + "\"");
}

// A path list_temporaries() returns: a valid key for its folder, and a temporary file's name.
void check_temporary_path(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "" : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if ((folder.empty() && slash != std::string::npos) || (!folder.empty() && !valid_key(folder)) ||
      name.rfind(kTempPrefix, 0) != 0 || name.size() == std::strlen(kTempPrefix)) {
    throw Error(ErrorKind::Internal, "invalid temporary file path \"" + path + "\"");
  }
}

// sweep_dead_temporaries() in each of the newest (by name) `max_dirs` folders directly under `dir`.
std::size_t sweep_newest_dirs(std::string dir, std::size_t max_dirs) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
    while (struct dirent* e = ::readdir(d)) {
      struct stat st;
      std::string n = e->d_name;
      if (n != "." && n != ".." && ::fstatat(::dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode)) {
        names.push_back(std::move(n));
      }
    }
  }
  std::sort(names.rbegin(), names.rend());
  if (names.size() > max_dirs) names.resize(max_dirs);
  std::size_t removed = 0;
  for (const auto& n : names) removed += sweep_dead_temporaries(dir + "/" + n);
  return removed;
}

class FsStorage final : public Storage {
 public:
  explicit FsStorage(std::string root) : root_(std::move(root)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  }

  std::string describe() const override { return "fs:" + root_; }

  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    check_key(key);
    std::string path = full(key);
    ensure_root();
    make_dirs(parent_dir(path), kRepositoryDirMode);
    if (sweep_due(key)) sweep_dead_temporaries(parent_dir(path));
    return std::make_unique<AtomicFileWriter>(path, opts.if_absent, /*durable=*/true, kRepositoryFileMode,
                                              fs_temp_path(path));
  }

  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override {
    check_key(key);
    if (range) return std::make_unique<FileSource>(full(key), range->offset, range->length);
    return std::make_unique<FileSource>(full(key));
  }

  // One open, one fstat, one pread on that descriptor: size and bytes of the same file (a rename that
  // replaces the key meanwhile does not change what an open descriptor reads).
  ObjectTail get_tail(const std::string& key, std::size_t n) override {
    check_key(key);
    const std::string path = full(key);
    Fd fd = open_read(path);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) throw errno_error("stat " + path, errno);
    if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::Io, path + " is not a regular file");
    ObjectTail tail;
    tail.size = static_cast<std::uint64_t>(st.st_size);
    tail.bytes.resize(static_cast<std::size_t>(std::min<std::uint64_t>(n, tail.size)));
    const std::uint64_t start = tail.size - tail.bytes.size();
    std::size_t got = 0;
    while (got < tail.bytes.size()) {
      ssize_t r = ::pread(fd.get(), tail.bytes.data() + got, tail.bytes.size() - got, static_cast<off_t>(start + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw errno_error("read " + path, errno);
      if (r == 0) throw Error(ErrorKind::Io, path + " shrank while its end was read");
      got += static_cast<std::size_t>(r);
    }
    return tail;
  }

  std::optional<ObjectInfo> head(const std::string& key) override {
    check_key(key);
    struct stat st;
    std::string path = full(key);
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw errno_error("stat " + path, errno);
    }
    if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::Io, path + " is not a regular file");
    return ObjectInfo{key, static_cast<std::uint64_t>(st.st_size), st.st_mtim.tv_sec};
  }

  std::vector<ObjectInfo> list(const std::string& prefix) override {
    std::vector<ObjectInfo> out;
    // Walk only the directory that can hold the prefix.
    std::string dir_key = prefix.substr(0, prefix.find_last_of('/') == std::string::npos
                                               ? 0
                                               : prefix.find_last_of('/') + 1);
    walk(dir_key, prefix, out);
    std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  void remove(const std::string& key) override {
    check_key(key);
    std::string path = full(key);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw errno_error("unlink " + path, errno);
  }

  std::vector<ObjectInfo> list_temporaries() override;

  void remove_temporary(const std::string& rel) override {
    check_temporary_path(rel);
    std::string path = full(rel);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw errno_error("unlink " + path, errno);
  }

  void remove_empty_folder(const std::string& prefix) override {
    if (prefix.empty() || prefix.back() != '/' || !valid_key(prefix.substr(0, prefix.size() - 1))) return;
    std::string path = full(prefix);
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
      spdlog::debug("could not remove empty directory {}: {}", path, std::strerror(errno));
    }
  }

  bool atomic_create() const override { return true; }
  std::size_t sweep_dead_writers(const std::string& prefix, std::size_t max_dirs) override {
    return sweep_newest_dirs(full(prefix), max_dirs);
  }

 private:
  std::string root_;
  std::atomic<bool> root_checked_{false};  // several threads may put at once (two may both check: harmless)

  std::string full(const std::string& key) const { return root_ + "/" + key; }

  void ensure_root() {
    if (root_checked_) return;
    make_dirs(root_, kRepositoryDirMode);
    if (::access(root_.c_str(), W_OK | X_OK) != 0) {
      throw Error(ErrorKind::Io, "repository " + root_ + " is not writable: " + std::strerror(errno));
    }
    root_checked_ = true;
  }

  // Lists the directory `dir_key` ("" or ending in '/'), recursing, keeping keys that start with prefix.
  void walk(const std::string& dir_key, const std::string& prefix, std::vector<ObjectInfo>& out) {
    std::string dir = dir_key.empty() ? root_ : root_ + "/" + dir_key.substr(0, dir_key.size() - 1);
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
      if (errno == ENOENT || errno == ENOTDIR) return;
      throw errno_error("open directory " + dir, errno);
    }
    std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
    for (;;) {
      errno = 0;
      struct dirent* e = ::readdir(d);
      if (!e) {
        if (errno != 0) throw errno_error("read directory " + dir, errno);
        break;
      }
      std::string name = e->d_name;
      if (name == "." || name == ".." || name.rfind(kTempPrefix, 0) == 0) continue;
      std::string key = dir_key + name;
      struct stat st;
      if (::fstatat(::dirfd(d), e->d_name, &st, 0) != 0) {
        if (errno == ENOENT) continue;  // removed while listing
        throw errno_error("stat " + dir + "/" + name, errno);
      }
      if (S_ISDIR(st.st_mode)) {
        std::string sub = key + "/";
        // Recurse only where the prefix can match.
        if (sub.compare(0, std::min(sub.size(), prefix.size()), prefix, 0, std::min(sub.size(), prefix.size())) == 0) {
          walk(sub, prefix, out);
        }
      } else if (S_ISREG(st.st_mode) && key.compare(0, prefix.size(), prefix) == 0) {
        out.push_back(ObjectInfo{key, static_cast<std::uint64_t>(st.st_size), st.st_mtim.tv_sec});
      }
    }
  }
};

// Temporary files are invisible to list(): walk the whole tree.
std::vector<ObjectInfo> FsStorage::list_temporaries() {
  namespace stdfs = std::filesystem;
  std::vector<ObjectInfo> out;
  const stdfs::path root = root_;
  std::error_code ec;
  if (!stdfs::is_directory(root, ec)) return out;
  stdfs::recursive_directory_iterator it(root, stdfs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw Error(ErrorKind::Io, "list " + root.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw Error(ErrorKind::Io, "list " + root.string() + ": " + ec.message());
    const auto& entry = *it;
    if (entry.path().filename().string().rfind(kTempPrefix, 0) != 0) continue;
    std::error_code e2;
    if (!entry.is_regular_file(e2)) continue;
    struct stat st;
    if (::lstat(entry.path().c_str(), &st) != 0) continue;  // gone meanwhile
    out.push_back(ObjectInfo{stdfs::relative(entry.path(), root, e2).string(), static_cast<std::uint64_t>(st.st_size),
                             st.st_mtim.tv_sec});
  }
  return out;
}

}  // namespace

std::string fs_host_tag() {
  static const std::string tag = [] {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    char ns[128] = {};
    ssize_t n = ::readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    std::uint64_t h = fnv1a(host);
    h = fnv1a("\n" + first_line_of("/proc/sys/kernel/random/boot_id"), h);
    h = fnv1a("\n" + std::string(ns, n > 0 ? static_cast<std::size_t>(n) : 0), h);
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return std::string(buf);
  }();
  return tag;
}

std::string fs_temp_path(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  char suffix[96];
  std::snprintf(suffix, sizeof suffix, ".%ld@%s.%u.%08x", static_cast<long>(::getpid()), fs_host_tag().c_str(),
                counter++, rd());
  return parent_dir(path) + "/" + kTempPrefix + base_name(path) + suffix;
}

std::optional<FsTempOwner> parse_fs_temp_name(const std::string& name) {
  if (name.rfind(kTempPrefix, 0) != 0) return std::nullopt;
  // From the end: <random>, <n>, <pid>@<tag>; the object's own name may hold dots.
  auto r = name.rfind('.');
  if (r == std::string::npos || !all_of_class(std::string_view(name).substr(r + 1), "0123456789abcdef")) return std::nullopt;
  auto c = name.rfind('.', r - 1);
  if (c == std::string::npos || !all_of_class(std::string_view(name).substr(c + 1, r - c - 1), "0123456789")) {
    return std::nullopt;
  }
  auto o = name.rfind('.', c - 1);
  if (o == std::string::npos || o < std::strlen(kTempPrefix)) return std::nullopt;
  std::string_view owner = std::string_view(name).substr(o + 1, c - o - 1);
  auto at = owner.find('@');
  if (at == std::string_view::npos || !all_of_class(owner.substr(0, at), "0123456789") || at > 9 ||
      owner.size() - at - 1 != 16 || !all_of_class(owner.substr(at + 1), "0123456789abcdef")) {
    return std::nullopt;
  }
  return FsTempOwner{std::stol(std::string(owner.substr(0, at))), std::string(owner.substr(at + 1))};
}

std::size_t sweep_dead_temporaries(const std::string& dir, std::int64_t max_age) {
  std::size_t removed = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  const std::string& mine = fs_host_tag();
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind(kTempPrefix, 0) != 0) continue;
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    auto owner = parse_fs_temp_name(name);
    const bool ours = owner && owner->host_tag == mine;  // this host and pid namespace: the pid decides
    const bool dead = ours && !pid_may_live(owner->pid);
    const bool stale = !ours && now - static_cast<std::int64_t>(st.st_mtim.tv_sec) >= max_age;
    if (!dead && !stale) continue;
    if (::unlinkat(::dirfd(d), e->d_name, 0) == 0) {
      ++removed;
      spdlog::debug("removed {}/{}: left by {}", dir, name, dead ? "a writer that no longer runs" : "a writer idle for long");
    }
  }
  return removed;
}

std::unique_ptr<Storage> make_fs_storage(const std::string& root) {
  if (root.empty() || root.front() != '/') {
    throw Error(ErrorKind::Config, "[repository] path must be an absolute path (got \"" + root + "\")");
  }
  return std::make_unique<FsStorage>(root);
}

}  // namespace pgvault
