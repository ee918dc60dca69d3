// The block-diff entry: what an incremental backup stores for a relation file whose changed blocks alone
// are kept, whichever way they were found (the server's INCREMENTAL.* files of PostgreSQL 17+ are
// converted to it at backup time; on 15/16 pgvault picks the blocks by page LSN). One format, so restore
// has one way to apply it. Bytes (all integers little-endian; docs/FORMAT.md "Block-diff entry"):
//
//   header, 32 bytes:  "PGVBLKD1"  u32 block_size  u32 0  u64 truncation_blocks  u64 file_blocks
//   chunks:            u32 count (1..kBlockDiffMaxChunk)  count x u32 block number  count x block_size bytes
//   end:               u32 0
//
// Block numbers ascend strictly over the whole entry and are below file_blocks; truncation_blocks <=
// file_blocks. Applying it to the file as reconstructed from the older backups of the chain: blocks at or
// beyond truncation_blocks are discarded (the relation was truncated after the parent), the file is set to
// file_blocks blocks (new blocks are zeros), then each listed block is written at its place. Compared
// with pg_combinebackup (reconstruct.c, PostgreSQL 17/18): the same length (its "truncation length, or
// past the highest block present" is file_blocks), the same zeros for a block no backup holds, the same
// "newest backup that has the block wins"; one difference: pg_combinebackup takes an older backup's block
// when it lies below the NEWEST backup's truncation length, this rule only when it lies below EVERY newer
// backup's. They agree whenever each backup holds every block written after its own truncation point
// (what WAL summaries and page LSNs give); where they differ, the older block was truncated away in
// between, and zeros (pg_combinebackup's own assumption for a block no backup holds) are right.
#pragma once

#include <cstdint>
#include <functional>

#include "common/base/io.h"

namespace pgvault {

inline constexpr std::size_t kBlockDiffHeaderSize = 32;
inline constexpr std::uint32_t kBlockDiffMaxChunk = 64;

struct BlockDiffHeader {
  std::uint32_t block_size = 8192;
  std::uint64_t truncation_blocks = 0;
  std::uint64_t file_blocks = 0;
};

// Streams an entry into `out` (not finished by it). add() blocks in ascending order; finish() writes the
// last chunk and the end mark. bytes() counts everything written so far.
class BlockDiffWriter {
 public:
  BlockDiffWriter(Sink& out, const BlockDiffHeader& header);
  void add(std::uint32_t block_number, ByteView block);  // block.size() == block_size; Internal error otherwise
  void finish();
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t blocks() const { return blocks_; }

 private:
  void flush_chunk();
  Sink& out_;
  BlockDiffHeader header_;
  Bytes numbers_, data_;
  std::uint32_t pending_ = 0;
  std::int64_t last_ = -1;
  std::uint64_t bytes_ = 0, blocks_ = 0;
  bool finished_ = false;
};

// Parses an entry as it arrives (a Sink, so it can sit where a bundle's file bytes are delivered), calling
// on_header once and then on_block for each block in order; memory is one chunk's numbers and one block.
// Every field is checked before use (magic, block size a power of two from 1 KiB to 32 KiB, counts, block
// numbers ascending and below file_blocks, the end mark and nothing after it): Corruption naming `what`.
class BlockDiffReader final : public Sink {
 public:
  using HeaderFn = std::function<void(const BlockDiffHeader&)>;
  using BlockFn = std::function<void(std::uint32_t block_number, ByteView block)>;
  BlockDiffReader(std::string what, HeaderFn on_header, BlockFn on_block);
  void write(ByteView data) override;
  void finish() override;  // Corruption when the entry is cut short

 private:
  enum class State { Header, Count, Numbers, Blocks, End };
  void step();
  std::string what_;
  HeaderFn on_header_;
  BlockFn on_block_;
  State state_ = State::Header;
  BlockDiffHeader header_;
  Bytes buf_;              // bytes of the current field
  std::size_t need_ = kBlockDiffHeaderSize;
  std::vector<std::uint32_t> numbers_;
  std::size_t next_block_ = 0;
  std::int64_t last_ = -1;
};

}  // namespace pgvault
