// The WAL index object (repo/wal_index.h): its key, JSON round trip and refusals, and reading and
// writing it through a repository in memory.
#include "common/repo/wal_index.h"

#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "common/repo/layout.h"
#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::expect_error;
using pgvault::testing::MemoryStorage;

namespace {

constexpr std::uint32_t kSeg = 1u << 20;

WalEvent event(WalEventKind kind, std::uint64_t lsn, std::uint32_t xid, PgTimestamp time, std::string name = "") {
  return WalEvent{kind, lsn, lsn + 40, time, xid, std::move(name)};
}

// What summarize_wal_segment says of segment 000000010000000000000007 (1 MiB segments).
WalSegmentSummary summary() {
  WalSegmentSummary s;
  s.start_lsn = 0x700000;
  s.records = 210;
  s.events = {event(WalEventKind::Commit, 0x700028, 726, 900),
              event(WalEventKind::Commit, 0x700110, 727, 1000),
              event(WalEventKind::Abort, 0x700188, 730, 800),
              event(WalEventKind::CommitPrepared, 0x7002E8, 731, 1100),
              event(WalEventKind::RestorePoint, 0x708228, 0, 1150, "rp_plain"),
              event(WalEventKind::AbortPrepared, 0x708450, 733, 1200),
              event(WalEventKind::RestorePoint, 0x70BFD0, 0, 1250, "rp \"quoted\"")};
  s.open_record_lsn = 0x7FFFD8;
  s.open_record_may_be_event = true;
  return s;
}

const WalFileName kName = *WalFileName::parse("000000010000000000000007");

TEST(WalIndexKey, SitsBesideTheWalFolder) {
  EXPECT_EQ(keys::wal_index(kName), "walindex/0000000100000000/000000010000000000000007");
  EXPECT_EQ(keys::wal_index_prefix(), "walindex/");
  auto parsed = keys::parse_wal_index_key(keys::wal_index(kName));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->name, kName.name);
  for (const std::string key : {"walindex/", "wal/0000000100000000/000000010000000000000007",
                                "walindex/0000000100000001/000000010000000000000007",
                                "walindex/0000000100000000/000000010000000000000007.partial",
                                "walindex/0000000100000000/00000001000000000000000g", "walindex/00000001.history"}) {
    EXPECT_FALSE(keys::parse_wal_index_key(key)) << key;
  }
}

TEST(WalIndex, MadeFromASummary) {
  WalIndex x = make_wal_index(kName, summary());
  EXPECT_EQ(x.segment, "000000010000000000000007");
  EXPECT_EQ(x.start_lsn, 0x700000u);
  EXPECT_EQ(x.records, 210u);
  EXPECT_EQ(x.min_time, std::optional<PgTimestamp>(800));
  EXPECT_EQ(x.max_time, std::optional<PgTimestamp>(1200));
  using Runs = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
  EXPECT_EQ(x.xid_runs, (Runs{{726, 727}, {730, 731}, {733, 733}}));
  ASSERT_EQ(x.restore_points.size(), 2u);
  EXPECT_EQ(x.restore_points[0].name, "rp_plain");
  EXPECT_EQ(x.restore_points[1].time, 1250);
  EXPECT_EQ(x.open_record_lsn, std::optional<std::uint64_t>(0x7FFFD8));
  EXPECT_TRUE(x.open_record_may_be_event);
  for (std::uint32_t xid : {726u, 727u, 730u, 731u, 733u}) EXPECT_TRUE(x.has_xid(xid)) << xid;
  for (std::uint32_t xid : {0u, 725u, 728u, 729u, 732u, 734u, 0xFFFFFFFFu}) EXPECT_FALSE(x.has_xid(xid)) << xid;
}

TEST(WalIndex, ASegmentWithoutEventsHasNoTimes) {
  WalSegmentSummary s;
  s.start_lsn = 0x700000;
  s.records = 3;
  WalIndex x = make_wal_index(kName, s);
  EXPECT_FALSE(x.min_time);
  EXPECT_TRUE(x.xid_runs.empty());
  EXPECT_FALSE(x.open_record_lsn);
  WalIndex back = WalIndex::from_json(x.to_json(), "idx");
  EXPECT_FALSE(back.min_time);
  EXPECT_FALSE(back.open_record_lsn);
  EXPECT_EQ(back.records, 3u);
}

TEST(WalIndex, JsonRoundTrip) {
  WalIndex x = make_wal_index(kName, summary());
  WalIndex back = WalIndex::from_json(x.to_json(), "idx");
  EXPECT_EQ(back.to_json(), x.to_json());
  EXPECT_EQ(back.segment, x.segment);
  EXPECT_EQ(back.min_time, x.min_time);
  EXPECT_EQ(back.xid_runs, x.xid_runs);
  ASSERT_EQ(back.restore_points.size(), 2u);
  EXPECT_EQ(back.restore_points[1].name, "rp \"quoted\"");
  EXPECT_EQ(back.restore_points[1].lsn, 0x70BFD0u);
  EXPECT_EQ(back.restore_points[1].end_lsn, 0x70BFF8u);
  EXPECT_EQ(back.restore_points[1].kind, WalEventKind::RestorePoint);
  EXPECT_EQ(back.open_record_lsn, x.open_record_lsn);
  EXPECT_TRUE(back.open_record_may_be_event);
  EXPECT_NE(x.to_json().find("\"start_lsn\": \"0/700000\""), std::string::npos);
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(WalIndex, RefusesMalformedIndexes) {
  const std::string good = make_wal_index(kName, summary()).to_json();
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "malformed WAL index"},
      {replaced(good, "\"format\": 1", "\"format\": 2"), "unknown format 2"},
      {replaced(good, "\"segment\": \"000000010000000000000007\"", "\"segment\": \"x\""), "segment \"x\""},
      {replaced(good, "\"start_lsn\": \"0/700000\"", "\"start_lsn\": \"nope\""), "start_lsn"},
      {replaced(good, "\"min_time\": 800", "\"min_time\": 1300"), "min_time and max_time disagree"},
      {replaced(good, "\"min_time\": 800,", ""), "min_time and max_time disagree"},
      {replaced(good, "733,\n   733", "731,\n   733"), "xid_runs out of order"},
      {replaced(good, "\"lsn\": \"0/708228\"", "\"lsn\": \"0/600000\""), "restore point at 0/600000"},
      {replaced(good, "\"open_record_lsn\": \"0/7FFFD8\"", "\"open_record_lsn\": \"0/708230\""),
       "open_record_lsn before the records"},
      {replaced(good, "\"records\": 210", "\"records\": -1"), "\"records\" is not an integer from 0 to"},
      // A float or a number out of range is refused, not truncated or wrapped by the JSON library.
      {replaced(good, "\"min_time\": 800", "\"min_time\": 800.5"), "\"min_time\" is not an integer"},
      {replaced(good, "733,\n   733", "733,\n   4294967296"), "an xid run's xid is not an integer from 0 to 4294967295"},
      {replaced(good, "\"format\": 1", "\"format\": 1.0"), "\"format\" is not an integer"},
      {replaced(good, "\"xid_runs\": [", "\"xid_runs\": [[1],"), "not [first, last]"},
  };
  for (const auto& [text, needle] : bad) {
    SCOPED_TRACE(needle);
    expect_error([&] { WalIndex::from_json(text, "idx-key"); }, ErrorKind::Corruption, needle);
    expect_error([&] { WalIndex::from_json(text, "idx-key"); }, ErrorKind::Corruption, "idx-key: ");
  }
}

struct MemRepo {
  MemoryStorage* mem = nullptr;
  std::unique_ptr<Repository> repo;
  MemRepo() {
    auto s = std::make_unique<MemoryStorage>();
    mem = s.get();
    repo = std::make_unique<Repository>(std::move(s), Config{});
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
  }
};

TEST(WalIndexStore, WriteThenRead) {
  MemRepo r;
  EXPECT_FALSE(read_wal_index(*r.repo, kName));
  WalIndex x = make_wal_index(kName, summary());
  write_wal_index(*r.repo, kName, x);
  ASSERT_TRUE(r.mem->objects.count("walindex/0000000100000000/000000010000000000000007"));
  auto back = read_wal_index(*r.repo, kName);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->to_json(), x.to_json());
  // A rewrite (a retried push) overwrites.
  x.records = 211;
  write_wal_index(*r.repo, kName, x);
  EXPECT_EQ(read_wal_index(*r.repo, kName)->records, 211u);
}

TEST(WalIndexStore, AnIndexUnderAnotherSegmentsKeyIsRefused) {
  MemRepo r;
  const WalFileName other = *WalFileName::parse("000000010000000000000008");
  write_wal_index(*r.repo, other, make_wal_index(kName, summary()));
  expect_error([&] { read_wal_index(*r.repo, other); }, ErrorKind::Corruption,
               "memory:/walindex/0000000100000000/000000010000000000000008: malformed WAL index (it describes segment "
               "000000010000000000000007");
  // A restore point past the segment's end (1 MiB segments).
  WalSegmentSummary s = summary();
  s.events.push_back(event(WalEventKind::RestorePoint, 0x800100, 0, 1300, "late"));
  s.open_record_lsn.reset();
  write_wal_index(*r.repo, kName, make_wal_index(kName, s));
  expect_error([&] { read_wal_index(*r.repo, kName); }, ErrorKind::Corruption, "an LSN outside the segment");
}

TEST(WalIndexStore, AStoredObjectThatDoesNotDecodeIsCorruption) {
  MemRepo r;
  write_wal_index(*r.repo, kName, make_wal_index(kName, summary()));
  Bytes& stored = r.mem->objects[keys::wal_index(kName)];
  stored[stored.size() / 2] ^= 0x40;
  EXPECT_THROW_KIND(read_wal_index(*r.repo, kName), ErrorKind::Corruption);
}

}  // namespace
