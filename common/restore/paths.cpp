// Filesystem primitives of a restore. Paths from the repository are checked when the manifest is parsed
// and again here, before each write; and every write opens its way down component by component with
// O_NOFOLLOW beneath its root (the data directory or a tablespace location), so neither a path nor a
// symbolic link met on the way (such as a pg_tblspc/<oid> link) can lead a write outside the root.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/errors.h"
#include "common/base/fs_sync.h"
#include "common/restore/restore_steps.h"

namespace pgvault::restore_detail {

namespace fsys = std::filesystem;

std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool dir_is_empty(const std::string& dir) {
  std::error_code ec;
  fsys::directory_iterator it(dir, ec);
  if (ec) throw Error(ErrorKind::Io, "cannot read directory " + dir + ": " + ec.message());
  return it == fsys::directory_iterator();
}

namespace {
void remove_path(const std::string& path) {
  std::error_code ec;
  fsys::remove_all(path, ec);
  if (ec) throw Error(ErrorKind::Io, "cannot remove " + path + ": " + ec.message());
}
}  // namespace

void remove_contents(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fsys::directory_iterator(dir, ec)) remove_path(e.path().string());
  if (ec) throw Error(ErrorKind::Io, "cannot read directory " + dir + ": " + ec.message());
}

void make_dir(const std::string& path, unsigned mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) throw errno_error("mkdir " + path, errno);
  if (::chmod(path.c_str(), mode & 07777) != 0) throw errno_error("chmod " + path, errno);
}

void check_restore_path(const std::string& label, const char* entry, const std::string& path, bool directory) {
  std::string why = manifest_path_problem(path, directory);
  if (!why.empty()) {
    throw Error(ErrorKind::Corruption,
                "backup " + label + ": " + entry + " path \"" + path + "\" " + why + "; refusing to write it");
  }
}

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

Fd open_file_beneath(const std::string& root, const std::string& rel, bool create) {
  auto slash = rel.rfind('/');
  // Parents the manifest did not list are created; O_EXCL | O_NOFOLLOW: never through a link.
  Fd dir = open_dir_beneath(root, slash == std::string::npos ? "" : rel.substr(0, slash), create);
  std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  int fd = ::openat(dir.get(), name.c_str(), flags, 0600);
  if (fd < 0) throw errno_error((create ? "create " : "open ") + root + "/" + rel, errno);
  return Fd(fd);
}

std::uint64_t size_of(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw errno_error("stat " + path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

void finish_file(Fd& fd, const ManifestFile& f, const std::string& path) {
  if (::fchmod(fd.get(), f.mode & 07777) != 0) throw errno_error("chmod " + path, errno);
  struct timespec times[2] = {{static_cast<time_t>(f.mtime), 0}, {static_cast<time_t>(f.mtime), 0}};
  if (::futimens(fd.get(), times) != 0) throw errno_error("set mtime of " + path, errno);
  sync_written_file(fd.get(), path, f.size);
  fd.close(path);
}

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

}  // namespace pgvault::restore_detail
