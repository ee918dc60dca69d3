// Local state folders (local_state.h).
#include "common/repo/local_state.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/crypto/crypto.h"

namespace pgvault {

namespace {

// What a repository is. A path's trailing slashes do not make another location.
std::string description_of(const Config::Repository& r) {
  if (r.type != "fs") return "s3:" + r.endpoint + "/" + r.bucket + "/" + r.prefix;
  return "fs:" + r.path.substr(0, std::max<std::size_t>(1, r.path.find_last_not_of('/') + 1));
}

}  // namespace

std::string local_state_base(const std::string& configured, const std::string& leaf, bool create) {
  return local_state_base_in("/var/lib/pgvault", configured, leaf, create, ::geteuid());
}

std::string local_state_base_in(const std::string& shared_root, const std::string& configured, const std::string& leaf,
                                bool create, uid_t euid) {
  if (!configured.empty()) return configured;
  const std::string shared = shared_root + "/" + leaf;
  if (is_dir(shared)) return shared;
  // root never creates the shared folder: made by root (mode 0700) it would shut out the postgres user
  // the WAL tools run as, and a package installed later would find it taken.
  if (create && euid != 0) {
    try {
      make_dirs(shared, 0700);
      return shared;
    } catch (const Error&) {
      // not ours to create (not root): the per-user folder
    }
  }
  return "/var/tmp/pgvault-" + std::to_string(euid) + "/" + leaf;
}

std::string repository_state_name(const Config::Repository& r) {
  return r.name + "-" + to_hex(sha256(as_bytes(r.name + "\n" + description_of(r)))).substr(0, 16);
}

std::string read_state_file(const std::string& path, std::size_t limit) {
  Fd fd = open_read(path);
  std::string text(limit + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw errno_error("read " + path, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > limit) throw Error(ErrorKind::Io, path + ": larger than " + std::to_string(limit) + " bytes");
  text.resize(got);
  return text;
}

}  // namespace pgvault
