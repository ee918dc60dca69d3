#include "common/archive/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "common/base/errors.h"
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
    if (n == "." || n == ".." || n == "prefetch.lock") continue;
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        now - st.st_mtime > max_age_seconds) {
      ::unlinkat(::dirfd(d), e->d_name, 0);
    }
  }
  ::closedir(d);
}

}  // namespace pgvault
