// The two ways an incremental backup turns a relation file into a block-diff entry
// (common/repo/block_diff.h), both streaming (the file's bytes arrive in pieces of any size):
//
//  IncrementalFileConverter  PostgreSQL 17+'s INCREMENTAL.<name> file (server mode). Its bytes, all
//      integers in the server's byte order (little-endian on every platform pgvault runs on):
//        u32 magic 0xd3ae1f0d, u32 block count n, u32 truncation block length, n x u32 block numbers
//        (relative to the segment, ascending), zero padding to a multiple of BLCKSZ when n > 0
//        (PostgreSQL 17.0 and later; an unpadded header is accepted too), then n blocks of BLCKSZ bytes.
//      The reconstructed file has max(truncation length, last block + 1) blocks (pg_combinebackup's rule).
//      Every field is checked against the tar entry's size before a byte is written.
//  ChangedBlockFilter  a whole relation file (client mode, PostgreSQL 15/16 or 17+ without summaries):
//      keeps the blocks changed since the parent backup started (page_changed_since), the blocks at or past
//      the parent's length, and, for a free space map fork, every block (see block_forms.cpp).
//
// Memory: the converter holds the block numbers of one file (4 bytes per block of a 1 GiB segment,
// 512 KiB with 8 KiB blocks; at most kMaxIncrementalBlocks) and one block; the filter one block; the
// block-diff writer one chunk (kBlockDiffMaxChunk blocks).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/io.h"
#include "common/repo/block_diff.h"

namespace pgvault {

inline constexpr std::uint32_t kIncrementalMagic = 0xd3ae1f0d;
// The most block numbers an INCREMENTAL file may list (a 4 GiB segment of 1 KiB blocks; the default
// build has 131072 blocks of 8 KiB in a 1 GiB segment).
inline constexpr std::uint32_t kMaxIncrementalBlocks = 1u << 22;

// The largest block-diff entry of a file of `blocks` blocks (every block kept): what to reserve in a bundle.
std::uint64_t block_diff_bound(std::uint64_t blocks, std::uint32_t block_size);

class IncrementalFileConverter {
 public:
  // `what` names the file in errors; `entry_size` is the tar entry's size.
  IncrementalFileConverter(std::string what, std::uint64_t entry_size, std::uint32_t block_size, Sink& out);
  ~IncrementalFileConverter();
  void write(ByteView data);
  // Corruption when the file ended early. Returns the reconstructed file's size in bytes.
  std::uint64_t finish();
  std::uint64_t stored_bytes() const;  // bytes of the block-diff entry written

 private:
  void parse_fixed_header();
  void parse_block_numbers();
  std::string what_;
  std::uint64_t entry_size_;
  std::uint32_t block_size_;
  Sink& out_;
  Bytes buf_;
  std::size_t need_ = 12;
  std::uint64_t skip_ = 0;  // padding bytes still to skip
  std::uint32_t count_ = 0, truncation_ = 0;
  std::vector<std::uint32_t> numbers_;
  std::size_t next_ = 0;
  std::uint64_t file_blocks_ = 0;
  enum class State { Fixed, Numbers, Blocks } state_ = State::Fixed;
  std::unique_ptr<BlockDiffWriter> writer_;
};

// True when a page must be kept by an incremental whose parent started at `since_lsn`: its pd_lsn (the
// first 8 bytes: xlogid, xrecoff, server byte order) is at or past since_lsn, or it is new (all zero,
// pd_lsn 0, or pd_upper 0, PostgreSQL's PageIsNew).
bool page_changed_since(ByteView page, std::uint64_t since_lsn);

class ChangedBlockFilter {
 public:
  // A file of `file_size` bytes (a multiple of block_size) whose parent version had `parent_size` bytes.
  ChangedBlockFilter(std::string what, std::uint64_t file_size, std::uint32_t block_size, std::uint64_t parent_size,
                     std::uint64_t since_lsn, bool every_block, Sink& out);
  void write(ByteView data);
  void finish();  // Corruption when the file ended early
  std::uint64_t stored_bytes() const { return writer_.bytes(); }
  std::uint64_t kept_blocks() const { return writer_.blocks(); }

 private:
  std::string what_;
  std::uint32_t block_size_;
  std::uint64_t file_blocks_, parent_blocks_, since_lsn_;
  bool every_block_;
  BlockDiffWriter writer_;
  Bytes block_;
  std::uint64_t next_block_ = 0;
};

}  // namespace pgvault
