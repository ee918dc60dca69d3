#include "common/storage/s3/s3_caps.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sstream>
#include <vector>

namespace pgvault {

namespace s3caps {
namespace {

struct Entry {
  std::int64_t when = 0;
  Cond cond = Cond::Unknown;
  std::string endpoint;
  std::string bucket;
};

// A directory only this user can change: not a symlink, owned by us, no group or other write.
bool private_dir(const std::string& dir) {
  struct stat st;
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
         (st.st_mode & 022) == 0;
}

std::string dir_of(const std::string& file) {
  std::size_t slash = file.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : file.substr(0, slash);
}

bool fresh(const Entry& e, std::int64_t now) { return e.when <= now && now - e.when < kMaxAgeS; }

// The entries of a file we trust (ours, in a private directory, not a symlink); none otherwise.
std::vector<Entry> load(const std::string& file) {
  std::vector<Entry> out;
  if (file.empty() || !private_dir(dir_of(file))) return out;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return out;
  std::string text;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 022) == 0 &&
      st.st_size < 64 * 1024) {
    text.resize(static_cast<std::size_t>(st.st_size));
    ssize_t n = ::pread(fd, text.data(), text.size(), 0);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    Entry e;
    std::string cond, extra;
    if (!(fields >> e.when >> cond >> e.endpoint >> e.bucket) || (fields >> extra) || (cond != "yes" && cond != "no")) {
      continue;
    }
    e.cond = cond == "yes" ? Cond::Supported : Cond::Unsupported;
    out.push_back(std::move(e));
  }
  return out;
}

bool write_file(const std::string& file, const std::string& text) {
  static std::atomic<unsigned> seq{0};
  const std::string tmp = file + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(seq++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::close(fd) == 0 && ok;
  ok = ok && ::rename(tmp.c_str(), file.c_str()) == 0;
  if (!ok) ::unlink(tmp.c_str());
  return ok;
}

}  // namespace

std::string default_file() {
  std::string dir;
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && *xdg == '/' && private_dir(xdg)) {
    dir = std::string(xdg) + "/pgvault";
  } else {
    const char* tmp = std::getenv("TMPDIR");
    dir = std::string(tmp != nullptr && *tmp == '/' ? tmp : "/tmp") + "/pgvault-" + std::to_string(::geteuid());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return "";
  return private_dir(dir) ? dir + "/s3-capabilities" : "";
}

Cond recall(const std::string& file, const std::string& endpoint, const std::string& bucket, std::int64_t now) {
  Cond cond = Cond::Unknown;
  std::int64_t newest = 0;
  for (const auto& e : load(file)) {
    if (e.endpoint == endpoint && e.bucket == bucket && fresh(e, now) && (cond == Cond::Unknown || e.when >= newest)) {
      cond = e.cond;
      newest = e.when;
    }
  }
  return cond;
}

void remember(const std::string& file, const std::string& endpoint, const std::string& bucket, Cond cond,
              std::int64_t now) {
  auto spaceless = [](const std::string& v) { return !v.empty() && v.find_first_of(" \t\r\n") == std::string::npos; };
  if (file.empty() || cond == Cond::Unknown || !spaceless(endpoint) || !spaceless(bucket)) return;
  if (!private_dir(dir_of(file))) return;
  std::vector<Entry> entries;
  for (auto& e : load(file)) {
    if (fresh(e, now) && !(e.endpoint == endpoint && e.bucket == bucket)) entries.push_back(std::move(e));
  }
  entries.push_back(Entry{now, cond, endpoint, bucket});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.when < b.when; });
  if (entries.size() > kMaxEntries) entries.erase(entries.begin(), entries.end() - kMaxEntries);
  std::string text;
  for (const auto& e : entries) {
    text += std::to_string(e.when) + (e.cond == Cond::Supported ? " yes " : " no ") + e.endpoint + " " + e.bucket + "\n";
  }
  if (!write_file(file, text)) spdlog::debug("could not update {}: {}", file, std::strerror(errno));
}

}  // namespace s3caps

namespace s3 {

CondWrites::CondWrites(std::string capability_file, std::string endpoint_id, std::string bucket)
    : option_(std::move(capability_file)), endpoint_id_(std::move(endpoint_id)), bucket_(std::move(bucket)) {}

s3caps::Cond CondWrites::get() {
  std::call_once(once_, [&] {
    file_ = option_ == "none" ? "" : option_.empty() ? s3caps::default_file() : option_;
    if (!file_.empty()) cond_ = s3caps::recall(file_, endpoint_id_, bucket_, std::time(nullptr));
  });
  return cond_.load();
}

void CondWrites::learned(s3caps::Cond cond) {
  (void)get();  // the remembered answer first, so it cannot overwrite this newer one
  if (cond_.exchange(cond) == cond) return;
  if (cond == s3caps::Cond::Unsupported) {
    spdlog::info("{} does not support conditional writes: create-if-absent puts are checked after the upload",
                 endpoint_id_);
  }
  if (!file_.empty()) s3caps::remember(file_, endpoint_id_, bucket_, cond, std::time(nullptr));
}

}  // namespace s3
}  // namespace pgvault
