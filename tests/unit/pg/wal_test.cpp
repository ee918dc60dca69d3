#include "common/pg/wal.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/base/errors.h"
#include "common/pg/crc32c.h"
#include "support/test_support.h"

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
  EXPECT_THROW(parse_lsn("0/1/2", "x"), Error);  // std::stoul stopped at the second slash: read as 0/1
  EXPECT_THROW(parse_lsn("0/12/", "x"), Error);
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

TEST(WalHeader, PageMagicOfEachSupportedVersion) {
  EXPECT_EQ(pg_version_for_wal_magic(0xD110), 15);
  EXPECT_EQ(pg_version_for_wal_magic(0xD113), 16);
  EXPECT_EQ(pg_version_for_wal_magic(0xD116), 17);
  EXPECT_EQ(pg_version_for_wal_magic(0xD118), 18);
}

TEST(WalHeader, UnknownPageMagicIsAnErrorNotVersionZero) {
  // A valid header of a release newer than pgvault knows (say 19) parses, but has no version.
  auto h = parse_wal_long_header(long_header(0xD11A, 0x0002, 1, 16u << 20, 8192), "seg");
  EXPECT_THROW_KIND(pg_version_for_wal_magic(h.magic), ErrorKind::InvalidInput);
  try {
    pg_version_for_wal_magic(h.magic);
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown WAL page magic 0xD11A (pgvault supports PostgreSQL 15 to 18)");
  }
}

TEST(WalHeader, RejectsGarbage) {
  EXPECT_THROW(parse_wal_long_header(long_header(0x1234, 2, 1, 16u << 20, 8192), "x"), Error);
  EXPECT_THROW(parse_wal_long_header(long_header(0xD110, 0, 1, 16u << 20, 8192), "x"), Error);
  EXPECT_THROW(parse_wal_long_header(long_header(0xD110, 2, 1, 3u << 20, 8192), "x"), Error);
  EXPECT_THROW(parse_wal_long_header(long_header(0xD110, 2, 1, 16u << 20, 1000), "x"), Error);
  Bytes shortpage(10, 0);
  EXPECT_THROW(parse_wal_long_header(shortpage, "x"), Error);
}

// ---- the checks wal-fetch and archive-info --verify share ----

namespace {
WalLongHeader header_at(std::uint64_t sysid, std::uint32_t tli, std::uint64_t pageaddr, std::uint32_t seg_size) {
  WalLongHeader h;
  h.magic = 0xD110;
  h.system_identifier = sysid;
  h.timeline = tli;
  h.pageaddr = pageaddr;
  h.segment_size = seg_size;
  h.block_size = 8192;
  return h;
}
}  // namespace

TEST(WalHeader, CheckAgainstTheName) {
  constexpr std::uint32_t kSeg = 16u << 20;
  auto name = *WalFileName::parse("000000030000000100000002");  // position 1/2000000
  const std::uint64_t pos = (1ull << 32) + 2ull * kSeg;
  EXPECT_FALSE(check_segment_header(header_at(7, 3, pos, kSeg), name, kSeg, 7));
  EXPECT_FALSE(check_segment_header(header_at(7, 2, pos, kSeg), name, kSeg, 7));  // copied from the parent
  auto kind = [&](const WalLongHeader& h) {
    auto e = check_segment_header(h, name, kSeg, 7);
    return e ? e->kind() : ErrorKind::Internal;
  };
  EXPECT_EQ(kind(header_at(8, 3, pos, kSeg)), ErrorKind::Foreign);
  EXPECT_EQ(kind(header_at(7, 4, pos, kSeg)), ErrorKind::Corruption);
  EXPECT_EQ(kind(header_at(7, 3, pos + kSeg, kSeg)), ErrorKind::Corruption);
  EXPECT_EQ(kind(header_at(7, 3, pos, kSeg * 2)), ErrorKind::Corruption);
  auto e = check_segment_header(header_at(7, 3, pos + kSeg, kSeg), name, kSeg, 7);
  EXPECT_NE(std::string(e->what()).find("position 1/3000000, name says 1/2000000"), std::string::npos) << e->what();
}

namespace {
// A pg_control of PostgreSQL 15's layout: system identifier first, CRC-32C at offset 288.
Bytes control_file(std::uint64_t sysid) {
  Bytes d(8192, 0);
  std::memcpy(d.data(), &sysid, 8);
  std::uint32_t version = 1300;
  std::memcpy(d.data() + 8, &version, 4);
  for (std::size_t i = 16; i < 288; ++i) d[i] = static_cast<std::uint8_t>(i * 7);
  std::uint32_t crc = crc32c(ByteView(d).first(288));
  std::memcpy(d.data() + 288, &crc, 4);
  return d;
}

void write_control(const std::string& datadir, ByteView data) {
  std::filesystem::create_directories(datadir + "/global");
  std::ofstream(datadir + "/global/pg_control", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}
}  // namespace

TEST(PgControl, ReadsTheSystemIdentifierAfterCheckingIt) {
  pgvault::testing::TempDir dir;
  EXPECT_FALSE(read_control_system_identifier(dir.path()));  // not a data directory
  Bytes good = control_file(7301234567890123456ull);
  write_control(dir.path(), good);
  EXPECT_EQ(read_control_system_identifier(dir.path()), 7301234567890123456ull);
  auto kind = [&](ByteView data) {
    write_control(dir.path(), data);
    try {
      read_control_system_identifier(dir.path());
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::Internal;
  };
  Bytes flipped = good;
  flipped[3] ^= 1;  // the system identifier itself
  EXPECT_EQ(kind(flipped), ErrorKind::Corruption);
  EXPECT_EQ(kind(ByteView(good).first(4096)), ErrorKind::Corruption);
  EXPECT_EQ(kind(Bytes(8192, 0)), ErrorKind::Corruption);
}
