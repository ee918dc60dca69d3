#include "common/storage_fs.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>

#include "common/errors.h"
#include "common/fs.h"

namespace pgvault {
namespace {

void check_key(const std::string& key) {
  bool bad = key.empty() || key.front() == '/' || key.find("//") != std::string::npos;
  std::size_t start = 0;
  while (!bad && start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string part = key.substr(start, end - start);
    if (part == "." || part == ".." || part.rfind(kTempPrefix, 0) == 0) bad = true;
    start = end + 1;
  }
  if (bad) throw Error(ErrorKind::Internal, "invalid storage key \"" + key + "\"");
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
    make_dirs(parent_dir(path));
    return std::make_unique<AtomicFileWriter>(path, opts.if_absent);
  }

  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override {
    check_key(key);
    if (range) return std::make_unique<FileSource>(full(key), range->offset, range->length);
    return std::make_unique<FileSource>(full(key));
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

 private:
  std::string root_;
  std::atomic<bool> root_checked_{false};  // several threads may put at once (two may both check: harmless)

  std::string full(const std::string& key) const { return root_ + "/" + key; }

  void ensure_root() {
    if (root_checked_) return;
    make_dirs(root_);
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

}  // namespace

std::unique_ptr<Storage> make_fs_storage(const std::string& root) {
  if (root.empty() || root.front() != '/') {
    throw Error(ErrorKind::Config, "[repository] path must be an absolute path (got \"" + root + "\")");
  }
  return std::make_unique<FsStorage>(root);
}

}  // namespace pgvault
