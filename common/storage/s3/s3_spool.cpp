#include "common/storage/s3/s3_spool.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/base/errors.h"

namespace pgvault::s3 {

UploadSpool::UploadSpool(const std::string& configured) {
  std::string dir = configured;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = (t != nullptr && *t != '\0') ? t : "/var/tmp";
  }
  fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);  // no name: nothing left behind
  if (fd_ < 0) {
    spdlog::debug("s3 upload spool in {} unavailable ({}); buffering in memory", dir, std::strerror(errno));
    return;
  }
  digests_.emplace();
}

bool UploadSpool::append(ByteView data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t r = ::pwrite(fd_, data.data() + off, data.size() - off, static_cast<off_t>(size_ + off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      spdlog::debug("s3 upload spool write failed ({}); buffering in memory", std::strerror(errno));
      return false;
    }
    off += static_cast<std::size_t>(r);
  }
  digests_->update(data);
  size_ += data.size();
  return true;
}

Bytes UploadSpool::take_back(const std::string& what) {
  Bytes buf(static_cast<std::size_t>(size_));
  std::size_t got = 0;
  while (got < buf.size()) {
    ssize_t r = ::pread(fd_, buf.data() + got, buf.size() - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw errno_error(what + ": read back the upload spool", r < 0 ? errno : EIO);
    got += static_cast<std::size_t>(r);
  }
  close();
  return buf;
}

void UploadSpool::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  digests_.reset();
}

}  // namespace pgvault::s3
