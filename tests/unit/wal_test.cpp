#include "common/wal.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/errors.h"

using namespace pgvault;

TEST(WalName, ParsesTheFourKinds) {
  auto seg = WalFileName::parse("000000010000000A000000FF");
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->kind, WalFileKind::Segment);
  EXPECT_EQ(seg->timeline, 1u);
  EXPECT_EQ(seg->log, 0xAu);
  EXPECT_EQ(seg->seg, 0xFFu);

  auto partial = WalFileName::parse("000000020000000000000003.partial");
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->kind, WalFileKind::Partial);
  EXPECT_EQ(partial->segment_part(), "000000020000000000000003");

  auto hist = WalFileName::parse("0000000A.history");
  ASSERT_TRUE(hist);
  EXPECT_EQ(hist->kind, WalFileKind::History);
  EXPECT_EQ(hist->timeline, 10u);

  auto backup = WalFileName::parse("000000010000000000000002.00000028.backup");
  ASSERT_TRUE(backup);
  EXPECT_EQ(backup->kind, WalFileKind::BackupHistory);
}

TEST(WalName, RejectsEverythingElse) {
  for (const char* bad : {"", "postgresql.conf", "00000001000000000000000", "0000000100000000000000011",
                          "000000010000000000000001.gz", "000000010000000000000001.partial.x",
                          "0000000g0000000000000001", "000000010000000000000001.0000002.backup",
                          "00000000.history", "000000000000000000000001", "../00000001000000000000001",
                          "0000000a0000000000000001", "00000001.history.x", "RECOVERYXLOG"}) {
    EXPECT_FALSE(WalFileName::parse(bad)) << bad;
  }
}

TEST(WalName, SegmentArithmeticRoundTrips) {
  const std::uint32_t sz = 16u << 20;
  EXPECT_EQ(segment_number(0, 1, sz), 1u);
  EXPECT_EQ(segment_number(1, 0, sz), 256u);
  EXPECT_EQ(segment_file_name(1, 256, sz), "000000010000000100000000");
  EXPECT_EQ(segment_file_name(3, 255, sz), "0000000300000000000000FF");
  EXPECT_EQ(segment_file_name(1, 4 * 4 + 2, 1u << 30), "000000010000000400000002");
  EXPECT_EQ(history_file_name(2), "00000002.history");
  EXPECT_TRUE(valid_segment_size(16u << 20));
  EXPECT_FALSE(valid_segment_size(3u << 20));
}

TEST(Lsn, ParseAndFormat) {
  EXPECT_EQ(parse_lsn("16/B374D848", "x"), 0x16B374D848ull);
  EXPECT_EQ(format_lsn(0x16B374D848ull), "16/B374D848");
  EXPECT_EQ(parse_lsn("0/0", "x"), 0u);
  EXPECT_THROW(parse_lsn("16B374D848", "x"), Error);
  EXPECT_THROW(parse_lsn("/1", "x"), Error);
  EXPECT_THROW(parse_lsn("1/", "x"), Error);
  EXPECT_THROW(parse_lsn("1/XYZ", "x"), Error);
}

namespace {
Bytes long_header(std::uint16_t magic, std::uint16_t info, std::uint64_t sysid, std::uint32_t segsz,
                  std::uint32_t blcksz) {
  Bytes page(8192, 0);
  std::memcpy(page.data(), &magic, 2);
  std::memcpy(page.data() + 2, &info, 2);
  std::uint32_t tli = 1;
  std::memcpy(page.data() + 4, &tli, 4);
  std::memcpy(page.data() + 24, &sysid, 8);
  std::memcpy(page.data() + 32, &segsz, 4);
  std::memcpy(page.data() + 36, &blcksz, 4);
  return page;
}
}  // namespace

TEST(WalHeader, ParsesLongHeader) {
  auto h = parse_wal_long_header(long_header(0xD110, 0x0002, 7301234567890123456ull, 16u << 20, 8192), "seg");
  EXPECT_EQ(h.system_identifier, 7301234567890123456ull);
  EXPECT_EQ(h.segment_size, 16u << 20);
  EXPECT_EQ(h.block_size, 8192u);
  EXPECT_EQ(pg_version_for_wal_magic(h.magic), 15);
}

TEST(WalHeader, RejectsGarbage) {
  EXPECT_THROW(parse_wal_long_header(long_header(0x1234, 2, 1, 16u << 20, 8192), "x"), Error);
  EXPECT_THROW(parse_wal_long_header(long_header(0xD110, 0, 1, 16u << 20, 8192), "x"), Error);
  EXPECT_THROW(parse_wal_long_header(long_header(0xD110, 2, 1, 3u << 20, 8192), "x"), Error);
  EXPECT_THROW(parse_wal_long_header(long_header(0xD110, 2, 1, 16u << 20, 1000), "x"), Error);
  Bytes shortpage(10, 0);
  EXPECT_THROW(parse_wal_long_header(shortpage, "x"), Error);
}
