// archive-info --verify and the WAL index (repo/wal_index.h): an index that does not decode or does not
// describe its segment is a corruption of the index's key; a segment without one is no problem.
#include <gtest/gtest.h>

#include "common/repo/layout.h"
#include "common/repo/wal_index.h"
#include "common/report/verify.h"
#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::has_problem;
using testing::kSmallSeg;
using testing::VerifyRepo;

WalFileName seg_name(std::uint64_t segno) { return *WalFileName::parse(segment_file_name(1, segno, kSmallSeg)); }

void put_index(VerifyRepo& v, std::uint64_t segno, std::uint64_t described) {
  WalSegmentSummary s;
  s.start_lsn = described * kSmallSeg;
  write_wal_index(*v.repo, seg_name(segno), make_wal_index(seg_name(described), s));
}

TEST(VerifyWalIndex, GoodIndexesAndMissingOnesAreNoProblem) {
  VerifyRepo v;
  put_index(v, 2, 2);
  put_index(v, 3, 3);
  VerifyReport r = v.verify();
  EXPECT_TRUE(r.problems.empty()) << r.problems.front().key << ": " << r.problems.front().message;
  EXPECT_EQ(r.objects, 1u + 1u + 8u);
}

TEST(VerifyWalIndex, AnIndexThatDoesNotDecodeOrDescribesAnotherSegmentIsACorruption) {
  VerifyRepo v;
  put_index(v, 2, 2);
  put_index(v, 4, 5);  // segment 5's index stored under segment 4's key
  Bytes& stored = v.mem->objects[keys::wal_index(seg_name(2))];
  stored[stored.size() / 2] ^= 0x10;
  VerifyReport r = v.verify();
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_TRUE(has_problem(r, keys::wal_index(seg_name(2)), ""));
  EXPECT_TRUE(has_problem(r, keys::wal_index(seg_name(4)), "it describes segment " + seg_name(5).name));
  EXPECT_EQ(r.problems[0].kind, "corruption");
}

}  // namespace
}  // namespace pgvault
