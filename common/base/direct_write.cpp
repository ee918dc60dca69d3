#include "common/base/direct_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/base/errors.h"
#include "common/base/fs.h"

namespace pgvault {

void DirectFileWriter::Free::operator()(std::uint8_t* p) const { std::free(p); }

DirectFileWriter::DirectFileWriter() = default;
DirectFileWriter::~DirectFileWriter() = default;

void DirectFileWriter::start(int fd, std::string path, bool direct) {
  fd_ = fd;
  path_ = std::move(path);
  staged_ = 0;
  direct_ = false;
  if (!direct) return;
  if (!buf_) {
    void* p = nullptr;
    if (::posix_memalign(&p, kAlign, kBuffer) != 0) return;  // no aligned buffer: the page cache it is
    buf_.reset(static_cast<std::uint8_t*>(p));
  }
  const int flags = ::fcntl(fd_, F_GETFL);
  direct_ = flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0;
}

void DirectFileWriter::write(ByteView data) {
  if (!direct_) {
    write_full(fd_, data, path_);
    return;
  }
  while (!data.empty()) {
    const std::size_t n = std::min(data.size(), kBuffer - staged_);
    std::memcpy(buf_.get() + staged_, data.data(), n);
    staged_ += n;
    data = data.subspan(n);
    if (staged_ == kBuffer) flush_blocks();
    if (!direct_) {  // a direct write was refused: the rest through the page cache
      write_full(fd_, data, path_);
      return;
    }
  }
}

void DirectFileWriter::flush_blocks() {
  const std::size_t whole = staged_ - staged_ % kAlign;
  std::size_t done = 0;
  while (done < whole) {
    const ssize_t n = direct_write_call(fd_, buf_.get() + done, whole - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && done == 0) break;  // not this device's alignment: page cache from here
    if (n < 0) throw errno_error("write " + path_, errno);
    done += static_cast<std::size_t>(n);
    if (done % kAlign != 0) break;  // a short write off a block boundary: the rest through the page cache
  }
  std::memmove(buf_.get(), buf_.get() + done, staged_ - done);
  staged_ -= done;
  if (done < whole) to_buffered();
}

void DirectFileWriter::to_buffered() {
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) throw errno_error("fcntl " + path_, errno);
  direct_ = false;
  write_full(fd_, ByteView(buf_.get(), staged_), path_);
  staged_ = 0;
}

void DirectFileWriter::finish() {
  if (!direct_) return;
  flush_blocks();
  if (direct_) to_buffered();  // the tail, under one block
}

}  // namespace pgvault
