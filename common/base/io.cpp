#include "common/base/io.h"

#include <algorithm>
#include <cstring>

namespace pgvault {

std::size_t SpanSource::read(std::span<std::uint8_t> buf) {
  std::size_t n = std::min(buf.size(), data_.size() - pos_);
  if (n > 0) std::memcpy(buf.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

std::uint64_t pump(Source& src, Sink& dst, std::size_t chunk) {
  std::uint64_t total = 0;
  {
    std::vector<std::uint8_t> buf(chunk);  // freed before finish(), which may wait long (an upload's commit)
    for (;;) {
      std::size_t n = src.read(buf);
      if (n == 0) break;
      dst.write(ByteView(buf.data(), n));
      total += n;
    }
  }
  dst.finish();
  return total;
}

}  // namespace pgvault
