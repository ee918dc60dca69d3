// pitr-prepare composing a file whose pieces have bundles of their own (chain_pipe.h: the pieces decoded
// at once and merged): newest wins, truncation, holes, batches and queues filled many times over, and a
// damaged piece of any backup named, every thread ended and nothing left.
#include <gtest/gtest.h>

#include <map>

#include "restore/chain_repo.h"
#include "restore/restore_fixture.h"

using namespace pgvault;
using namespace pgvault::restore_test;
using pgvault::testing::ChainBuilder;
using pgvault::testing::kChainBlock;

namespace {

constexpr const char* kFull = "20260101T000000Z-F";
constexpr const char* kIncr1 = "20260102T000000Z-I";
constexpr const char* kIncr2 = "20260103T000000Z-I";

// Block b of backup k (0 = the full): distinct per backup and block.
std::string mark(std::size_t k, std::uint32_t b) {
  std::string s(kChainBlock, static_cast<char>('A' + k));
  s[1] = static_cast<char>(b & 0xff);
  s[2] = static_cast<char>(b >> 8);
  return s;
}

// A full of `base` blocks of base/5/100 in a bundle of its own (PG_VERSION and pg_control in another),
// then two incrementals, each {truncation, length, blocks} for base/5/100, also alone in their bundles.
struct Layer {
  std::uint64_t truncation = 0, length = 0;
  std::vector<std::uint32_t> blocks;
};

// `damage` (0..2): the backup whose piece gets one byte changed late in it (after batches went out),
// under a bundle digest that matches (the piece's CRC-32C finds it); -1: none.
void damage_piece(ChainBuilder& c, int damage, std::size_t k) {
  if (damage != static_cast<int>(k)) return;
  const ManifestFile& f = c.cur().files.back();
  c.plain[f.offset + f.bundle_bytes() - 100] ^= 1;
}

void build(ChainRepo& r, std::uint32_t base, const Layer& i1, const Layer& i2, int damage = -1) {
  ChainBuilder& c = *r.chain;
  c.begin(kFull);
  c.full("PG_VERSION", "15\n");
  c.full("global/pg_control", std::string(512, 'c'));
  c.next_bundle();
  std::string text;
  for (std::uint32_t b = 0; b < base; ++b) text += mark(0, b);
  c.full("base/5/100", text);
  damage_piece(c, damage, 0);
  c.commit();
  std::string expected = text;
  const char* labels[] = {kIncr1, kIncr2};
  const char* parents[] = {kFull, kIncr1};
  const Layer* layers[] = {&i1, &i2};
  for (std::size_t k = 1; k <= 2; ++k) {
    const Layer& l = *layers[k - 1];
    expected.resize(std::min<std::size_t>(expected.size(), l.truncation * kChainBlock));
    expected.resize(l.length * kChainBlock, '\0');
    std::map<std::uint32_t, std::string> changed;
    for (auto b : l.blocks) {
      changed[b] = mark(k, b);
      expected.replace(b * kChainBlock, kChainBlock, changed[b]);
    }
    c.begin(labels[k - 1], parents[k - 1]);
    c.unchanged("PG_VERSION");
    c.unchanged("global/pg_control");
    c.blocks("base/5/100", l.truncation, l.length, changed, expected);
    damage_piece(c, damage, k);
    c.commit();
  }
}

std::vector<std::uint32_t> every(std::uint32_t step, std::uint32_t from, std::uint32_t to) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t b = from; b < to; b += step) out.push_back(b);
  return out;
}

}  // namespace

// incr1 truncates the file to 3 blocks and extends it to 6 (lists 1, 4), incr2 truncates to 6 and extends
// to 10 (lists 1, 7, 9): block 1 is incr2's, 4 incr1's, 0 and 2 the full's, 3, 5, 6, 8 zeros.
TEST(ChainPipe, NewestWinsTruncationAndHoles) {
  ChainRepo r;
  build(r, 8, {3, 6, {1, 4}}, {6, 10, {1, 7, 9}});
  run_restore(*r.repo, r.options());
  r.expect_contents();
  std::string want = mark(0, 0) + mark(2, 1) + mark(0, 2) + zeros(1) + mark(1, 4) + zeros(2) + mark(2, 7) + zeros(1) +
                     mark(2, 9);
  EXPECT_EQ(r.file("base/5/100"), want);
}

// 3000 blocks (3 MiB at 1 KiB a block: several batches per piece, queues full many times): incr1 lists
// every 3rd block and shrinks the file to 2500, incr2 every 5th and extends it to 3200 (truncation 2400).
TEST(ChainPipe, ManyBatchesPerPiece) {
  ChainRepo r;
  build(r, 3000, {2500, 2500, every(3, 0, 2500)}, {2400, 3200, every(5, 1, 3200)});
  run_restore(*r.repo, r.options());
  r.expect_contents();
}

// A damaged piece (damage_piece), in any backup of the chain, fails the restore naming the backup, the file and the bundle;
// the other pieces' threads end (the test returns) and the data directory is gone.
TEST(ChainPipe, ADamagedPieceOfAnyBackupIsNamedAndEveryThreadEnds) {
  for (std::size_t k = 0; k < 3; ++k) {
    ChainRepo r;
    build(r, 3000, {3000, 3000, every(2, 0, 3000)}, {3000, 3000, every(7, 0, 3000)}, static_cast<int>(k));
    const BackupManifest& m = r.chain->backups[k];
    try {
      run_restore(*r.repo, r.options());
      ADD_FAILURE() << "restored a damaged piece of backup " << k;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << msg;
      const std::string bundle = "bundle-00000" + std::to_string(m.files.back().bundle);  // 1 in the full, else 0
      EXPECT_NE(msg.find("backup " + m.label + ": file base/5/100 (bundle " + bundle + ")"), std::string::npos) << msg;
      EXPECT_NE(msg.find(k == 0 ? "content fail verification: CRC-32C" : "changed blocks fail verification: CRC-32C"),
                std::string::npos)
          << msg;
    }
    EXPECT_FALSE(exists(r.tmp / "pgdata"));
  }
}
