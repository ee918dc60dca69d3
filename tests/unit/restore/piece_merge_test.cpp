// merge_pieces and BlockQueue (piece_merge.h): the pieces of one file, each fed by its own thread, merged
// newest-wins with the truncation cutoff and holes, and a piece failing part-way stopping everything.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/restore/piece_merge.h"
#include "support/test_support.h"

using namespace pgvault;
using namespace pgvault::restore_detail;

namespace {

constexpr std::uint32_t kBs = 8192;

// A piece: its header (block-diffs) and blocks; a block's bytes are all (piece + 1) * 16 + block % 16.
struct TestPiece {
  bool base = false;
  std::uint64_t truncation = 0, file_blocks = 0;
  std::vector<std::uint32_t> blocks;  // a base: every block 0..n-1
  int fail_after = -1;               // batches pushed before the feeder fails (cancels all), -1: never
};

std::uint8_t fill(std::size_t piece, std::uint64_t b) { return static_cast<std::uint8_t>((piece + 1) * 16 + b % 16); }

// Feeds piece `k` into q[k], two blocks per batch (a base: four blocks, kBaseAlign bytes).
void feed(std::size_t k, const TestPiece& p, std::vector<BlockQueue>& qs) {
  BlockQueue& q = qs[k];
  if (!p.base) q.set_header({kBs, p.truncation, p.file_blocks});
  const std::size_t per = p.base ? kBaseAlign / kBs : 2;
  int pushed = 0;
  for (std::size_t i = 0; i < p.blocks.size(); i += per) {
    if (pushed == p.fail_after) {
      for (auto& other : qs) other.cancel();
      return;
    }
    BlockBatch batch = q.spare();
    batch.first_byte = std::uint64_t{p.blocks[i]} * kBs;
    for (std::size_t j = i; j < std::min(p.blocks.size(), i + per); ++j) {
      if (!p.base) batch.numbers.push_back(p.blocks[j]);
      batch.data.insert(batch.data.end(), kBs, fill(k, p.blocks[j]));
    }
    q.push(std::move(batch));
    ++pushed;
  }
  q.close();
}

// Per block of the result, the piece it came from (-1: not written, a hole); every block's bytes checked.
std::vector<int> merge(const std::vector<TestPiece>& pieces, std::uint64_t blocks) {
  std::vector<BlockQueue> qs(pieces.size());
  std::vector<BlockQueue*> ptrs;
  for (auto& q : qs) ptrs.push_back(&q);
  std::vector<std::thread> threads;
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    threads.emplace_back([&, k] {
      try {
        feed(k, pieces[k], qs);
      } catch (const Error& e) {  // cancelled while waiting on a full queue
        EXPECT_EQ(e.kind(), ErrorKind::Interrupted) << e.what();
      }
    });
  }
  std::vector<int> from(blocks, -1);
  std::int64_t last = -1;
  auto write = [&](std::uint64_t at, ByteView run) {  // a run of whole blocks
    ASSERT_EQ(at % kBs, 0u);
    ASSERT_EQ(run.size() % kBs, 0u);
    for (std::uint64_t b = at / kBs; !run.empty(); ++b, run = run.subspan(kBs)) {
      ASSERT_LT(b, blocks);
      EXPECT_GT(static_cast<std::int64_t>(b), last) << "blocks out of order or twice";
      last = static_cast<std::int64_t>(b);
      from[b] = run[0] / 16 - 1;
      EXPECT_EQ(run[0], fill(static_cast<std::size_t>(from[b]), b));
      EXPECT_EQ(run[kBs - 1], run[0]);
    }
  };
  try {
    merge_pieces(ptrs, pieces.back().base, write, [] {});
  } catch (...) {
    for (auto& q : qs) q.cancel();
    for (auto& t : threads) t.join();
    throw;
  }
  for (auto& t : threads) t.join();
  return from;
}

std::vector<std::uint32_t> upto(std::uint32_t n) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t b = 0; b < n; ++b) out.push_back(b);
  return out;
}

}  // namespace

// newest: 10 blocks (truncation 6), lists 1, 7, 9; middle: truncated to 3, 6 blocks, lists 1 and 4;
// base: 8 blocks. Block 1 is the newest's, 4 the middle's, 0 and 2 the base's; the base's 3..7 are gone
// (the middle truncated below them), 3, 5, 6, 8 are holes.
TEST(PieceMerge, NewestWinsTheTruncationCutoffAndHoles) {
  auto from = merge({{false, 6, 10, {1, 7, 9}}, {false, 3, 6, {1, 4}}, {true, 0, 0, upto(8)}}, 10);
  EXPECT_EQ(from, (std::vector<int>{2, 0, 2, -1, 1, -1, -1, 0, -1, 0}));
}

// Blocks past the newest piece's own truncation but listed by it are its own (the file was extended).
TEST(PieceMerge, AnOlderBlockBelowEveryCutoffFillsTheGapsOfNewerPieces) {
  auto from = merge({{false, 12, 12, {0, 5, 6, 7, 11}}, {false, 12, 12, {1, 5, 9}}, {true, 0, 0, upto(12)}}, 12);
  EXPECT_EQ(from, (std::vector<int>{0, 1, 2, 2, 2, 0, 0, 0, 2, 1, 2, 0}));
  // Without a base (a chain whose base was cut short is not this function's business): holes.
  from = merge({{false, 4, 6, {0, 5}}, {false, 6, 6, {1, 4, 5}}}, 6);
  EXPECT_EQ(from, (std::vector<int>{0, 1, -1, -1, -1, 0}));
}

// A base whose last block is short (a file not a multiple of the block size) is written as it is.
TEST(PieceMerge, TheBasesShortLastBlockIsWrittenAsItIs) {
  std::vector<BlockQueue> qs(2);
  qs[0].set_header({kBs, 0, 1});
  qs[0].close();  // truncated to nothing: the base supplies nothing
  BlockBatch b;
  b.data.assign(kBs + 100, 7);
  qs[1].push(std::move(b));
  qs[1].close();
  std::vector<std::pair<std::uint64_t, std::size_t>> writes;
  merge_pieces({&qs[0], &qs[1]}, true, [&](std::uint64_t at, ByteView d) { writes.emplace_back(at, d.size()); }, [] {});
  EXPECT_TRUE(writes.empty());
  BlockQueue a, c;
  a.set_header({kBs, 2, 2});
  a.close();
  BlockBatch b2;
  b2.data.assign(kBs + 100, 7);
  c.push(std::move(b2));
  c.close();
  merge_pieces({&a, &c}, true, [&](std::uint64_t at, ByteView d) { writes.emplace_back(at, d.size()); }, [] {});
  EXPECT_EQ(writes, (std::vector<std::pair<std::uint64_t, std::size_t>>{{0, kBs + 100}}));  // one run
}

// A piece failing part-way (its feeder cancels every queue) ends the merge with Interrupted, every
// feeder, blocked or not, ends, and the blocks merged so far stop at the failing piece's last batch.
TEST(PieceMerge, APieceFailingMidwayStopsTheMergeAndEveryFeeder) {
  for (std::size_t failing : {0u, 1u, 2u}) {
    std::vector<TestPiece> pieces{{false, 4096, 4096, upto(4096)}, {false, 4096, 4096, upto(4096)}, {true, 0, 0, upto(4096)}};
    pieces[failing].fail_after = 3;
    EXPECT_THROW_KIND(merge(pieces, 4096), ErrorKind::Interrupted);
  }
}

// The producer waits while kQueueBatches are queued; cancel() wakes it with Interrupted.
TEST(PieceMerge, AFullQueueBlocksItsProducerUntilCancelled) {
  BlockQueue q;
  for (std::size_t i = 0; i < kQueueBatches; ++i) q.push(BlockBatch{});
  std::atomic<bool> thrown{false};
  std::thread t([&] {
    try {
      q.push(BlockBatch{});
    } catch (const Error& e) {
      thrown = e.kind() == ErrorKind::Interrupted;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(thrown.load());
  q.cancel();
  t.join();
  EXPECT_TRUE(thrown.load());
  BlockBatch out;
  EXPECT_THROW_KIND(q.pop(out), ErrorKind::Interrupted);
}

// Pieces that disagree on the block size are Corruption.
TEST(PieceMerge, PiecesOfDifferentBlockSizesAreRefused) {
  BlockQueue a, b;
  a.set_header({8192, 2, 2});
  b.set_header({4096, 2, 2});
  EXPECT_THROW_KIND(merge_pieces({&a, &b}, false, [](std::uint64_t, ByteView) {}, [] {}), ErrorKind::Corruption);
}
