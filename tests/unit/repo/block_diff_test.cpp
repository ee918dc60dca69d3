// The block-diff entry: a round trip through writer and reader, chunking, and every refusal of the reader.
#include "common/repo/block_diff.h"

#include <gtest/gtest.h>

#include <map>

#include "support/test_support.h"

using namespace pgvault;

namespace {

Bytes block_of(std::uint8_t fill, std::size_t size = 8192) { return Bytes(size, fill); }

Bytes make_entry(const BlockDiffHeader& h, const std::vector<std::uint32_t>& blocks) {
  Bytes out;
  VectorSink sink(out);
  BlockDiffWriter w(sink, h);
  for (auto b : blocks) w.add(b, block_of(static_cast<std::uint8_t>(b), h.block_size));
  w.finish();
  EXPECT_EQ(w.bytes(), out.size());
  EXPECT_EQ(w.blocks(), blocks.size());
  return out;
}

struct Parsed {
  BlockDiffHeader header;
  std::map<std::uint32_t, Bytes> blocks;
  int headers = 0;
};

// Feeds `entry` in pieces of `piece` bytes.
Parsed parse(const Bytes& entry, std::size_t piece = 7) {
  Parsed p;
  BlockDiffReader r(
      "backups/L/bundle-000001: base/5/16384", [&](const BlockDiffHeader& h) { p.header = h, ++p.headers; },
      [&](std::uint32_t n, ByteView b) { p.blocks[n] = Bytes(b.begin(), b.end()); });
  for (std::size_t i = 0; i < entry.size(); i += piece) {
    r.write(ByteView(entry).subspan(i, std::min(piece, entry.size() - i)));
  }
  r.finish();
  return p;
}

}  // namespace

TEST(BlockDiff, RoundTripAcrossSeveralChunks) {
  BlockDiffHeader h{8192, 150, 200};
  std::vector<std::uint32_t> blocks;
  for (std::uint32_t b = 0; b < 200; b += 2) blocks.push_back(b);  // 100 blocks: two chunks (64 + 36)
  Bytes entry = make_entry(h, blocks);
  EXPECT_EQ(entry.size(), kBlockDiffHeaderSize + 4 + 64 * (4 + 8192) + 4 + 36 * (4 + 8192) + 4);
  Parsed p = parse(entry, 1000);
  EXPECT_EQ(p.headers, 1);
  EXPECT_EQ(p.header.truncation_blocks, 150u);
  EXPECT_EQ(p.header.file_blocks, 200u);
  ASSERT_EQ(p.blocks.size(), 100u);
  EXPECT_EQ(p.blocks[198], block_of(198));
}

TEST(BlockDiff, EmptyEntryOnlyChangesTheLength) {
  Parsed p = parse(make_entry({4096, 3, 3}, {}), 1);
  EXPECT_EQ(p.header.block_size, 4096u);
  EXPECT_TRUE(p.blocks.empty());
}

TEST(BlockDiff, WriterRefusesBlocksOutOfOrderOrBeyondTheFile) {
  Bytes out;
  VectorSink sink(out);
  BlockDiffWriter w(sink, {8192, 4, 4});
  w.add(1, block_of(1));
  EXPECT_THROW_KIND(w.add(1, block_of(1)), ErrorKind::Internal);
  EXPECT_THROW_KIND(w.add(4, block_of(4)), ErrorKind::Internal);
  EXPECT_THROW_KIND(w.add(2, block_of(2, 100)), ErrorKind::Internal);
  EXPECT_THROW_KIND(BlockDiffWriter(sink, BlockDiffHeader{8192, 5, 4}), ErrorKind::Internal);
}

TEST(BlockDiff, ReaderRefusesDamagedEntries) {
  const Bytes good = make_entry({8192, 10, 10}, {1, 5});
  auto damaged = [&](std::size_t at, std::uint8_t value) {
    Bytes e = good;
    e[at] = value;
    return e;
  };
  EXPECT_THROW_KIND(parse(damaged(0, 'X')), ErrorKind::Corruption);               // magic
  EXPECT_THROW_KIND(parse(damaged(9, 0x21)), ErrorKind::Corruption);              // block size 8192 -> 8448
  EXPECT_THROW_KIND(parse(damaged(12, 1)), ErrorKind::Corruption);                // reserved
  EXPECT_THROW_KIND(parse(damaged(16, 11)), ErrorKind::Corruption);               // truncation > length
  EXPECT_THROW_KIND(parse(damaged(32, 65)), ErrorKind::Corruption);               // chunk too large
  EXPECT_THROW_KIND(parse(damaged(36, 9)), ErrorKind::Corruption);                // blocks 9, 5: out of order
  EXPECT_THROW_KIND(parse(damaged(40, 10)), ErrorKind::Corruption);               // block 10 of 10
  Bytes cut(good.begin(), good.end() - 1);
  EXPECT_THROW_KIND(parse(cut), ErrorKind::Corruption);
  Bytes longer = good;
  longer.push_back(0);
  EXPECT_THROW_KIND(parse(longer), ErrorKind::Corruption);
  EXPECT_NO_THROW(parse(good));
}
