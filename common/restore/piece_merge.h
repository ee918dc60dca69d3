// The pipelined composition of one file from the pieces of an incremental chain (chain_pipe.cpp): each
// piece is decoded by its own thread into a small bounded BlockQueue, and merge_pieces() takes the
// blocks of all pieces at once, block number by block number, with the same rule as BlockCover
// (chain_compose.h): block b comes from the newest piece listing it, provided b lies below the
// truncation length of every piece newer than that one (and below the newest piece's file_blocks);
// otherwise it is not written (a hole of the file set to its final length: zeros). Each piece's block
// numbers ascend strictly (BlockDiffReader checks it; a base is read in order), so the merge needs only
// the head of each queue.
//
// A queue carries a piece's header (block-diff pieces) and then batches of blocks: a block-diff's
// batches list their block numbers, a base's batches are its bytes from `first_byte` (a multiple of
// kBaseAlign, so any block size up to 32 KiB splits them at block boundaries; the last block of a base
// may be short). A queue is closed by its producer only after the piece was verified whole (the bundle's
// digest and the piece's CRC-32C): the merge ends when every queue is closed, so a merged file is never
// finished before every piece it read is verified. cancel() wakes both sides; push() and pop() then throw
// Interrupted.
//
// Memory per pipelined file: per piece kQueueBatches queued + one filled by the producer + one read by
// the merger, of at most kBatchBytes each (4 x 1 MiB per piece), whatever the file's size.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "common/base/io.h"

namespace pgvault::restore_detail {

inline constexpr std::size_t kBatchBytes = 1 << 20;
inline constexpr std::size_t kQueueBatches = 2;
inline constexpr std::uint64_t kBaseAlign = 32 << 10;  // the largest block size a block-diff allows

struct PieceHeader {
  std::uint32_t block_size = 0;
  std::uint64_t truncation_blocks = 0;
  std::uint64_t file_blocks = 0;
};

struct BlockBatch {
  std::vector<std::uint32_t> numbers;  // a block-diff's blocks (data holds numbers.size() blocks)
  std::uint64_t first_byte = 0;        // a base's batch: the offset of data[0]
  Bytes data;
  void clear() {
    numbers.clear();
    data.clear();
  }
};

// Bounded single-producer single-consumer queue of one piece's batches; batches are recycled.
class BlockQueue {
 public:
  // Producer side.
  void set_header(const PieceHeader& h);
  BlockBatch spare();            // an empty batch (a recycled one when there is one)
  void push(BlockBatch&& batch);  // waits while kQueueBatches are queued
  void close();                   // the piece ended and was verified
  // Consumer side.
  PieceHeader header();       // waits for set_header(); Corruption when closed without one
  bool pop(BlockBatch& out);  // false once closed and drained
  void recycle(BlockBatch&& batch);
  // Either side, any thread: both sides throw Interrupted from then on.
  void cancel();

 private:
  void wait(std::unique_lock<std::mutex>& lock, const std::function<bool()>& ready);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<BlockBatch> queued_;
  std::vector<BlockBatch> spare_;
  PieceHeader header_;
  bool has_header_ = false, closed_ = false, cancelled_ = false;
};

// Merges `pieces` (newest first; the last one is a base when `last_is_base`, its block size that of the
// block-diffs) into write(byte offset, bytes), in ascending order: blocks contiguous in the file and in
// one batch come as one call, a view into the batch valid during the call (no copy). Corruption when
// the pieces disagree on the block size. check_stop() is called once per batch.
void merge_pieces(const std::vector<BlockQueue*>& pieces, bool last_is_base,
                  const std::function<void(std::uint64_t, ByteView)>& write, const std::function<void()>& check_stop);

}  // namespace pgvault::restore_detail
