// BlockCover and RunWriter (chain_compose.h).
#include "common/restore/chain_compose.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>

#include "common/base/errors.h"

namespace pgvault::restore_detail {

BlockCover::BlockCover(std::uint64_t blocks, std::uint64_t block_size)
    : block_size_(block_size), bits_((blocks + 63) / 64, 0), cutoff_(blocks) {}

void BlockCover::begin_piece(std::uint64_t truncation_blocks) { next_cutoff_ = std::min(cutoff_, truncation_blocks); }

bool BlockCover::take(std::uint64_t b) {
  if (b >= cutoff_) return false;
  std::uint64_t& word = bits_[b / 64];
  const std::uint64_t bit = std::uint64_t{1} << (b % 64);
  if (word & bit) return false;
  word |= bit;
  ++supplied_below_cutoff_;
  return true;
}

void BlockCover::end_piece() {
  cutoff_ = next_cutoff_;
  std::uint64_t n = 0;
  for (std::uint64_t w = 0; w < cutoff_ / 64; ++w) n += static_cast<std::uint64_t>(std::popcount(bits_[w]));
  if (cutoff_ % 64) n += static_cast<std::uint64_t>(std::popcount(bits_[cutoff_ / 64] & ((std::uint64_t{1} << (cutoff_ % 64)) - 1)));
  supplied_below_cutoff_ = n;
}

void pwrite_all(int fd, ByteView data, std::uint64_t at, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw errno_error("write " + path, n < 0 ? errno : EIO);
    data = data.subspan(static_cast<std::size_t>(n));
    at += static_cast<std::uint64_t>(n);
  }
}

void RunWriter::add(std::uint64_t at, ByteView data) {
  if (!buf_.empty() && (at != at_ + buf_.size() || buf_.size() + data.size() > kRunBytes)) flush();
  if (buf_.empty()) at_ = at;
  if (data.size() >= kRunBytes) {  // large enough alone: no copy
    write(data, at);
    return;
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
}

void RunWriter::flush() {
  if (buf_.empty()) return;
  write(buf_, at_);
  buf_.clear();
}

void RunWriter::write(ByteView data, std::uint64_t at) { pwrite_all(open_(), data, at, path_); }

}  // namespace pgvault::restore_detail
