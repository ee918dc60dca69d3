// The composition of one file rebuilt from an incremental backup's chain, its pieces applied NEWEST
// FIRST so that every block is written once, by the newest backup that holds it (pg_combinebackup's
// "newest wins", with block_diff.h's truncation rule):
//
//   block b of the result = block b of the newest piece listing it (the base, a "full" entry, lists
//   every block it has), provided b is below the truncation length of every piece newer than that one;
//   otherwise zeros (a hole left by the newest piece's ftruncate to the file's length).
//
// BlockCover keeps, for one file, which blocks newer pieces already supplied (one bit per block of the
// file's final length) and the lowest truncation length seen so far (the cutoff: an older piece's block
// at or past it was truncated away in between). RunWriter turns the blocks a piece supplies into as few
// pwrite calls as possible (contiguous blocks joined, up to kRunBytes per call).
//
// Memory: BlockCover is file_blocks / 8 bytes (16 KiB for a 1 GiB segment of 8 KiB blocks), alive from
// the file's newest piece to its base (or until older pieces can add nothing); RunWriter holds at most
// kRunBytes. write_chain (chain_write.cpp) bounds how many covers exist at once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/base/io.h"

namespace pgvault::restore_detail {

class BlockCover {
 public:
  // `blocks`: the file's final length in blocks (the newest piece's file_blocks); `block_size`: bytes.
  BlockCover(std::uint64_t blocks, std::uint64_t block_size);
  std::uint64_t block_size() const { return block_size_; }
  std::uint64_t bytes() const { return bits_.size() * 8; }

  // A piece older than every piece before it starts; `truncation_blocks` applies to the pieces after it
  // (older ones), not to its own blocks. Call end_piece() when its blocks are done.
  void begin_piece(std::uint64_t truncation_blocks);
  // True when the current piece supplies block b (below the cutoff, not supplied by a newer piece); the
  // block is then marked as supplied.
  bool take(std::uint64_t b);
  void end_piece();
  // Every block below the cutoff is supplied: older pieces can add nothing.
  bool complete() const { return supplied_below_cutoff_ == cutoff_; }
  std::uint64_t cutoff() const { return cutoff_; }

 private:
  std::uint64_t block_size_;
  std::vector<std::uint64_t> bits_;
  std::uint64_t cutoff_;                   // blocks at or past it are not taken from the current piece
  std::uint64_t next_cutoff_ = 0;          // the current piece's truncation length
  std::uint64_t supplied_below_cutoff_ = 0;
};

// Joins writes at ascending, contiguous offsets into one pwrite (at most kRunBytes buffered).
class RunWriter {
 public:
  static constexpr std::size_t kRunBytes = 1 << 20;
  // `open` gives the file descriptor, called at the first write only (a piece that writes nothing
  // opens nothing).
  RunWriter(std::function<int()> open, std::string path) : open_(std::move(open)), path_(std::move(path)) {}
  void add(std::uint64_t at, ByteView data);
  void flush();

 private:
  void write(ByteView data, std::uint64_t at);
  std::function<int()> open_;
  std::string path_;
  Bytes buf_;
  std::uint64_t at_ = 0;  // offset of buf_[0]
};

// pwrite of all of `data` at `at` (EINTR and short writes retried).
void pwrite_all(int fd, ByteView data, std::uint64_t at, const std::string& path);

}  // namespace pgvault::restore_detail
