// BlockCover (chain_compose.h): which piece of a chain supplies each block when pieces are applied newest
// first, and RunWriter joining contiguous blocks into few writes.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/restore/chain_compose.h"
#include "restore/restore_fixture.h"
#include "support/test_support.h"

using pgvault::restore_detail::BlockCover;
using pgvault::restore_detail::RunWriter;

namespace {

// Applies pieces newest first, each {truncation, listed blocks}; returns per block of the final file the
// index of the piece that supplies it (-1: zeros). Piece 0 is the newest.
std::vector<int> compose(std::uint64_t blocks, const std::vector<std::pair<std::uint64_t, std::vector<std::uint64_t>>>& pieces,
                         bool* complete_after_newest = nullptr) {
  BlockCover cover(blocks, 8192);
  std::vector<int> from(blocks, -1);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    cover.begin_piece(pieces[i].first);
    for (auto b : pieces[i].second) {
      if (cover.take(b)) {
        EXPECT_EQ(from[b], -1) << "block " << b << " written twice";
        from[b] = static_cast<int>(i);
      }
    }
    cover.end_piece();
    if (i == 0 && complete_after_newest) *complete_after_newest = cover.complete();
  }
  return from;
}

}  // namespace

// newest: extends to 10 blocks (truncation 6), lists 1, 7, 9; middle: truncated to 3, lists 1 and 4
// (of its 6); base: 8 blocks. Block 1 is the newest's, 4 the middle's, 0 and 2 the base's; the base's
// 3..7 are gone (the middle truncated below them), 3, 5, 6, 8 are zeros.
TEST(BlockCover, NewestWinsAndATruncationInTheMiddleRemovesOlderBlocks) {
  bool complete = true;
  auto from = compose(10, {{6, {1, 7, 9}}, {3, {1, 4}}, {0, {0, 1, 2, 3, 4, 5, 6, 7}}}, &complete);
  EXPECT_FALSE(complete);
  EXPECT_EQ(from, (std::vector<int>{2, 0, 2, -1, 1, -1, -1, 0, -1, 0}));
}

TEST(BlockCover, CompleteWhenEveryBlockBelowTheCutoffIsSupplied) {
  bool complete = false;
  compose(3, {{2, {0, 1, 2}}}, &complete);
  EXPECT_TRUE(complete);
  compose(4, {{2, {0, 1}}}, &complete);  // blocks 2 and 3 are past the truncation: zeros or its own
  EXPECT_TRUE(complete);
  compose(4, {{4, {0, 1, 3}}}, &complete);
  EXPECT_FALSE(complete);
  compose(4, {{0, {}}}, &complete);  // truncated to nothing: every block is the newest's or zeros
  EXPECT_TRUE(complete);
}

TEST(RunWriter, JoinsContiguousBlocksAndKeepsGapsAsTheyWere) {
  pgvault::testing::TempDir tmp;
  std::string path = tmp / "f";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 10), 0);
  int opened = 0;
  RunWriter w([&] { ++opened; return fd; }, path);
  w.add(0, pgvault::as_bytes("ab"));
  w.add(2, pgvault::as_bytes("cd"));
  w.add(6, pgvault::as_bytes("gh"));  // a gap at 4..5 stays as it was
  w.flush();
  w.flush();  // nothing buffered: no write
  ::close(fd);
  EXPECT_EQ(opened, 2);  // one write per run
  EXPECT_EQ(pgvault::restore_test::slurp(path), std::string("abcd\0\0gh\0\0", 10));
}
