#include "common/repo/inventory.h"

#include "common/report/verify.h"

#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::uint32_t kSeg = 16u << 20;

std::string seg_name(std::uint32_t tli, std::uint64_t segno) { return segment_file_name(tli, segno, kSeg); }
std::string seg_key(std::uint32_t tli, std::uint64_t segno) { return keys::wal(*WalFileName::parse(seg_name(tli, segno))); }
std::uint64_t lsn_of(std::uint64_t segno, std::uint64_t off = 0) { return segno * kSeg + off; }

// A synthetic inventory: segments [first, last] of each timeline except `holes`, plus history entries.
struct Builder {
  std::vector<ObjectInfo> objects;
  std::map<std::uint32_t, std::vector<HistoryEntry>> histories;

  Builder& segs(std::uint32_t tli, std::uint64_t first, std::uint64_t last, std::set<std::uint64_t> holes = {}) {
    for (std::uint64_t s = first; s <= last; ++s) {
      if (!holes.count(s)) objects.push_back({seg_key(tli, s), 100, static_cast<std::int64_t>(1000 + s)});
    }
    return *this;
  }
  Builder& history(std::uint32_t tli, std::vector<HistoryEntry> entries) {
    objects.push_back({"wal/" + history_file_name(tli), 10, 0});
    histories[tli] = std::move(entries);
    return *this;
  }
  Inventory build() const {
    Inventory inv;
    add_wal_listing(inv, objects);
    for (auto& [tli, e] : histories) inv.histories[tli].entries = e;
    return inv;
  }
};

TEST(InventoryTest, ListingGroupsByTimelineAndKind) {
  Inventory inv;
  std::vector<ObjectInfo> objs = {
      {seg_key(1, 3), 1, 0},
      {seg_key(1, 1), 1, 0},
      {seg_key(2, 4), 1, 0},
      {"wal/0000000100000000/000000010000000000000002.partial", 1, 0},
      {"wal/0000000100000000/000000010000000000000001.00000028.backup", 1, 0},
      {"wal/00000002.history", 1, 0},
      {"wal/0000000100000000/garbage", 1, 0},
      {"wal/0000000100000000/.pgvault-tmp.abc", 1, 0},
      {"wal/000000010000000000000005", 1, 0},  // right name, wrong place
  };
  add_wal_listing(inv, objs);
  ASSERT_EQ(inv.wal.size(), 2u);
  ASSERT_EQ(inv.wal[1].segments.size(), 2u);
  EXPECT_EQ(inv.wal[1].segments[0].segno, 1u);
  EXPECT_EQ(inv.wal[1].segments[1].segno, 3u);
  EXPECT_EQ(inv.wal[1].partials.size(), 1u);
  EXPECT_EQ(inv.wal[2].segments.size(), 1u);
  EXPECT_EQ(inv.backup_history_files.size(), 1u);
  EXPECT_TRUE(inv.has_history(2));
  EXPECT_EQ(inv.unknown_keys.size(), 2u);
  EXPECT_NE(inv.find_segment(1, 3), nullptr);
  EXPECT_EQ(inv.find_segment(1, 2), nullptr);
}

TEST(InventoryTest, GapsAsRanges) {
  Inventory inv = Builder().segs(1, 2, 20, {5, 6, 7, 12}).build();
  auto gaps = timeline_gaps(inv.wal[1]);
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_EQ(gaps[0].first, 5u);
  EXPECT_EQ(gaps[0].last, 7u);
  EXPECT_EQ(gaps[1].first, 12u);
  EXPECT_EQ(gaps[1].last, 12u);
  EXPECT_TRUE(timeline_gaps(Builder().segs(1, 0, 3).build().wal[1]).empty());
}

TEST(InventoryTest, ParsesHistoryFiles) {
  auto e = parse_history("1\t0/5000100\tno recovery target specified\n\n# comment\n2\t0/9000000\tbefore 2026\n",
                         "00000003.history");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].parent, 1u);
  EXPECT_EQ(e[0].switchpoint, 0x5000100u);
  EXPECT_EQ(e[0].reason, "no recovery target specified");
  EXPECT_EQ(e[1].parent, 2u);
  EXPECT_EQ(e[1].switchpoint, 0x9000000u);

  for (const char* bad : {"x\t0/1\n", "1\tnot-an-lsn\n", "2\t0/5\n1\t0/9\n", "2\t0/5\n2\t0/9\n", "1\n"}) {
    try {
      parse_history(bad, "h");
      FAIL() << "accepted: " << bad;
    } catch (const Error& err) {
      EXPECT_EQ(err.kind(), ErrorKind::Corruption) << bad;
    }
  }
}

TEST(InventoryTest, ChainFollowsSwitchpointsLikePostgres) {
  Inventory inv = Builder()
                      .history(2, {{1, lsn_of(5, 0x100), "a"}})
                      .history(3, {{1, lsn_of(5, 0x100), "a"}, {2, lsn_of(9), "b"}})
                      .build();
  auto same = timeline_chain(inv, 1, lsn_of(2), 1);
  ASSERT_EQ(same.size(), 1u);
  EXPECT_EQ(same[0].timeline, 1u);

  auto c = timeline_chain(inv, 1, lsn_of(2), 3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].timeline, 1u);
  EXPECT_EQ(c[0].end_segno, 4u);  // the segment holding the switchpoint is read from timeline 2
  EXPECT_EQ(c[1].timeline, 2u);
  EXPECT_EQ(c[1].begin_segno, 5u);
  EXPECT_EQ(c[1].end_segno, 8u);  // switchpoint 0/9000000 is exactly segment 9's start
  EXPECT_EQ(c[2].timeline, 3u);
  EXPECT_EQ(c[2].begin_segno, 9u);

  // From timeline 2 (a backup taken on it).
  auto c2 = timeline_chain(inv, 2, lsn_of(6), 3);
  ASSERT_EQ(c2.size(), 2u);
  EXPECT_EQ(c2[0].timeline, 2u);
  EXPECT_EQ(c2[0].end_segno, 8u);
}

// The history file PostgreSQL's own recovery tests produce: a point-in-time recovery back to a restore
// point on timeline 1 that lies before the earlier switch to timeline 2. PostgreSQL follows it.
const char* const kPostgresHistory3 =
    "1\t0/3018CB0\tno recovery target specified\n\n2\t0/3018C48\tat restore point \"rp\"\n";

TEST(InventoryTest, ParsesHistoryWhoseSwitchpointsDoNotIncrease) {
  auto e = parse_history(kPostgresHistory3, "00000003.history");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].switchpoint, 0x3018CB0u);
  EXPECT_EQ(e[1].parent, 2u);
  EXPECT_EQ(e[1].switchpoint, 0x3018C48u);
}

TEST(InventoryTest, ChainSkipsTheEmptyTimelineOfANonIncreasingHistory) {
  Inventory inv = Builder()
                      .history(2, {{1, 0x3018CB0, ""}})
                      .history(3, parse_history(kPostgresHistory3, "00000003.history"))
                      .build();
  // Timeline 2 covers no WAL on timeline 3's path: 1 up to 0/3018C48, then 3 (segment 3 on).
  auto c = timeline_chain(inv, 1, 0x2000028, 3);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].timeline, 1u);
  EXPECT_EQ(c[0].end_segno, 2u);
  EXPECT_EQ(c[0].end_lsn, 0x3018C48u);
  EXPECT_EQ(c[1].timeline, 3u);
  EXPECT_EQ(c[1].begin_segno, 3u);
  EXPECT_EQ(c[1].begin_lsn, 0x3018C48u);
  // Between the two switchpoints the WAL is timeline 3's: a backup there is not on timeline 1 in 3's history.
  EXPECT_THROW(timeline_chain(inv, 1, 0x3018C80, 3), Error);
  EXPECT_THROW(timeline_chain(inv, 2, 0x3018CB0, 3), Error);  // timeline 2 is empty in 3's history
  EXPECT_EQ(descendant_timelines(inv, 1, 0x2000028), (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(descendant_timelines(inv, 1, 0x3018C80), (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(descendant_timelines(inv, 2, 0x3018CB0), (std::vector<std::uint32_t>{2}));

  // Switchpoints in different segments: timeline 3 starts (segment 4) before timeline 2 would (segment 5),
  // so segment 4 is read from timeline 3, never from 1 (PostgreSQL reads the newest whose start is <= it).
  Inventory inv2 = Builder().history(3, {{1, lsn_of(5, 0x100), ""}, {2, lsn_of(4, 0x100), ""}}).build();
  auto c2 = timeline_chain(inv2, 1, lsn_of(1), 3);
  ASSERT_EQ(c2.size(), 2u);
  EXPECT_EQ(c2[0].timeline, 1u);
  EXPECT_EQ(c2[0].end_segno, 3u);
  EXPECT_EQ(c2[1].timeline, 3u);
  EXPECT_EQ(c2[1].begin_segno, 4u);
}

TEST(InventoryTest, ChainRefusesTimelinesThatAreNotChildren) {
  Inventory inv = Builder().history(2, {{1, lsn_of(5), ""}}).build();
  // A backup on timeline 1 after the fork cannot recover onto timeline 2.
  try {
    timeline_chain(inv, 1, lsn_of(7), 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidInput);
    EXPECT_NE(std::string(e.what()).find("not a child"), std::string::npos);
  }
  try {
    timeline_chain(inv, 1, lsn_of(1), 4);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("00000004.history"), std::string::npos);
  }
  EXPECT_THROW(timeline_chain(inv, 2, lsn_of(7), 1), Error);
}

TEST(InventoryTest, LatestTimelineProbesConsecutively) {
  Inventory inv = Builder().history(2, {{1, lsn_of(5), ""}}).history(3, {{1, lsn_of(5), ""}, {2, lsn_of(8), ""}})
                      .history(5, {{1, lsn_of(5), ""}, {2, lsn_of(8), ""}, {4, lsn_of(9), ""}}).build();
  EXPECT_EQ(latest_timeline(inv, 1), 3u);  // 4.history is missing, so PostgreSQL stops at 3
  EXPECT_EQ(latest_timeline(inv, 3), 3u);
  auto d = descendant_timelines(inv, 1, lsn_of(2));
  EXPECT_EQ(d, (std::vector<std::uint32_t>{1, 2, 3, 5}));
  EXPECT_EQ(descendant_timelines(inv, 1, lsn_of(6)), (std::vector<std::uint32_t>{1}));
}

TEST(InventoryTest, WalCheckCompleteAndBounded) {
  Inventory inv = Builder().segs(1, 1, 10).build();
  auto chain = timeline_chain(inv, 1, lsn_of(2), 1);
  WalCheck c = check_wal_path(inv, chain, lsn_of(2, 0x28), lsn_of(6, 0x100), lsn_of(3));
  EXPECT_TRUE(c.ok());
  EXPECT_EQ(c.first_segno, 2u);
  EXPECT_EQ(c.last_segno, 6u);
  EXPECT_EQ(c.segments, 5u);
  // Open-ended (latest): to the last archived segment.
  WalCheck open = check_wal_path(inv, chain, lsn_of(2), std::nullopt, lsn_of(3));
  EXPECT_TRUE(open.ok());
  EXPECT_EQ(open.last_segno, 10u);
  EXPECT_EQ(archived_end_lsn(inv, chain), lsn_of(11));
  // An end below the backup's stop still requires the stop segment.
  WalCheck low = check_wal_path(inv, chain, lsn_of(2), lsn_of(2, 5), lsn_of(4));
  EXPECT_EQ(low.last_segno, 4u);
}

TEST(InventoryTest, WalCheckReportsFirstGap) {
  Inventory inv = Builder().segs(1, 1, 10, {6, 8}).build();
  auto chain = timeline_chain(inv, 1, lsn_of(2), 1);
  WalCheck c = check_wal_path(inv, chain, lsn_of(2), std::nullopt, lsn_of(3));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(*c.missing, seg_name(1, 6));
  EXPECT_EQ(*c.missing_key, seg_key(1, 6));
  EXPECT_EQ(c.missing_all, (std::vector<std::string>{seg_name(1, 6), seg_name(1, 8)}));
  // Bounded before the gap: fine.
  EXPECT_TRUE(check_wal_path(inv, chain, lsn_of(2), lsn_of(5, 10), lsn_of(3)).ok());
  // The start segment itself missing.
  Inventory inv2 = Builder().segs(1, 3, 10).build();
  WalCheck c2 = check_wal_path(inv2, chain, lsn_of(2), lsn_of(4), lsn_of(3));
  EXPECT_EQ(*c2.missing, seg_name(1, 2));
}

TEST(InventoryTest, WalCheckAcrossTimelineSwitch) {
  // Timeline 2 starts inside segment 5: segment 5 must come from timeline 2, timeline 1's copy does not
  // count; timeline 1's segments after the switch are ignored.
  Builder b;
  b.segs(1, 1, 12).segs(2, 6, 9).history(2, {{1, lsn_of(5, 0x100), "r"}});
  Inventory inv = b.build();
  auto chain = timeline_chain(inv, 1, lsn_of(2), 2);
  WalCheck c = check_wal_path(inv, chain, lsn_of(2), std::nullopt, lsn_of(3));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(*c.missing, seg_name(2, 5));
  EXPECT_EQ(c.last_segno, 9u);  // last archived on the chain, not timeline 1's segment 12

  b.segs(2, 5, 5);
  Inventory inv2 = b.build();
  WalCheck ok = check_wal_path(inv2, chain, lsn_of(2), std::nullopt, lsn_of(3));
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.segments, 8u);  // 2..9
  // An LSN target on timeline 1 before the switch, on the same chain.
  EXPECT_TRUE(check_wal_path(inv2, chain, lsn_of(2), lsn_of(4, 7), lsn_of(3)).ok());
}

// --- load_inventory and the recovery window over an in-memory repository ---

Config plain_config() {
  Config c;
  c.compression.method = Compression::None;
  return c;
}

BackupManifest manifest(const std::string& label, std::uint32_t tli, std::uint64_t start_seg, std::uint64_t stop_seg) {
  return testing::backup_manifest(label, tli, start_seg, stop_seg, kSeg);
}

struct MemRepo {
  testing::MemoryStorage* mem = nullptr;
  std::unique_ptr<Repository> repo;
  MemRepo() {
    auto s = std::make_unique<testing::MemoryStorage>();
    mem = s.get();
    repo = std::make_unique<Repository>(std::move(s), plain_config());
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
  }
  void segs(std::uint32_t tli, std::uint64_t first, std::uint64_t last, std::set<std::uint64_t> holes = {}) {
    for (std::uint64_t s = first; s <= last; ++s) {
      if (!holes.count(s)) repo->put_bytes(seg_key(tli, s), as_bytes("wal"));
    }
  }
};

TEST(InventoryTest, LoadsRepositoryAndSeparatesIncompleteBackups) {
  MemRepo r;
  r.segs(1, 1, 8);
  r.repo->put_bytes("wal/00000002.history", as_bytes("1\t0/6000000\tno recovery target specified\n"));
  r.repo->put_bytes("wal/00000003.history", as_bytes("garbage\n"));
  write_manifest(*r.repo, manifest("20260101T000000Z-F", 1, 2, 3));
  r.repo->put_bytes(keys::backup_bundle("20260101T000000Z-F", 0), as_bytes("x"));
  r.repo->put_bytes(keys::backup_bundle("20260102T000000Z-F", 0), as_bytes("x"));  // no manifest
  r.repo->put_bytes(keys::backup_manifest("20260103T000000Z-F"), as_bytes("{not json"));

  Inventory inv = load_inventory(*r.repo);
  ASSERT_TRUE(inv.identity);
  EXPECT_EQ(inv.wal_segment_size, kSeg);
  ASSERT_EQ(inv.backups.size(), 1u);
  EXPECT_EQ(inv.backups[0].label, "20260101T000000Z-F");
  ASSERT_EQ(inv.incomplete.size(), 2u);
  EXPECT_EQ(inv.incomplete[0].label, "20260102T000000Z-F");
  EXPECT_TRUE(inv.incomplete[0].error.empty());
  EXPECT_EQ(inv.incomplete[1].label, "20260103T000000Z-F");
  EXPECT_NE(inv.incomplete[1].error.find("manifest"), std::string::npos);
  ASSERT_EQ(inv.histories.size(), 2u);
  EXPECT_EQ(inv.histories[2].entries.size(), 1u);
  EXPECT_TRUE(inv.histories[2].error.empty());
  EXPECT_FALSE(inv.histories[3].error.empty());
  EXPECT_EQ(inv.wal[1].segments.size(), 8u);
}

// The inventory keeps each manifest's head only; with_files reads the entries again, and only for the
// same backup. A head never passes for a whole manifest: writing it or restoring from it is an error.
TEST(InventoryTest, KeepsManifestHeadsAndReadsTheFilesAgainOnlyForTheSameBackup) {
  MemRepo r;
  r.segs(1, 1, 3);
  const std::string label = "20260101T000000Z-F";
  BackupManifest m = manifest(label, 1, 1, 2);
  for (int i = 0; i < 3; ++i) m.files.push_back(ManifestFile{"base/1/" + std::to_string(i), 0, 10, 0600, 0, "0000000" + std::to_string(i), 0, 10u * i, ""});
  write_manifest(*r.repo, m);

  Inventory inv = load_inventory(*r.repo);
  ASSERT_EQ(inv.backups.size(), 1u);
  const BackupManifest& head = inv.backups[0];
  EXPECT_TRUE(head.files.empty());
  EXPECT_EQ(head.file_count(), 3u);
  EXPECT_EQ(head.files.capacity(), 0u);
  try {
    (void)head.to_json();
    ADD_FAILURE() << "a head was written as a manifest";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Internal);
  }
  EXPECT_THROW(head.require_files("restore"), Error);

  BackupManifest whole = with_files(*r.repo, head);
  EXPECT_FALSE(whole.files_dropped);
  EXPECT_EQ(whole.to_json(), m.to_json());
  BackupManifest unchanged = with_files(*r.repo, whole);  // a whole manifest is returned as it is
  EXPECT_EQ(unchanged.files.size(), 3u);

  BackupManifest other = m;  // another backup under the same label since the listing
  other.files.pop_back();
  const std::string key = keys::backup_manifest(label);
  r.repo->put_bytes(key, as_bytes(other.to_json()));
  try {
    with_files(*r.repo, head);
    ADD_FAILURE() << "a changed manifest was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
  other = m;
  other.stop_time = "2026-01-01T00:00:09Z";
  r.repo->put_bytes(key, as_bytes(other.to_json()));
  EXPECT_THROW(with_files(*r.repo, head), Error);
  r.repo->storage().remove(key);
  try {
    with_files(*r.repo, head);
    ADD_FAILURE() << "a removed manifest was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
  }
}

TEST(InventoryTest, LoadsAndVerifiesANonIncreasingHistory) {
  MemRepo r;
  r.segs(1, 1, 3);
  r.segs(2, 3, 3);
  r.segs(3, 3, 5);
  r.repo->put_bytes("wal/00000002.history", as_bytes("1\t0/3018CB0\tno recovery target specified\n"));
  r.repo->put_bytes("wal/00000003.history", as_bytes(kPostgresHistory3));
  write_manifest(*r.repo, manifest("20260101T000000Z-F", 1, 1, 2));
  Inventory inv = load_inventory(*r.repo);
  EXPECT_EQ(inv.histories[3].error, "");
  ASSERT_EQ(inv.histories[3].entries.size(), 2u);
  RecoveryWindow w = recovery_window(inv);
  EXPECT_EQ(w.latest_timeline, 3u);
  EXPECT_EQ(w.latest_lsn, lsn_of(6));
  VerifyReport rep = verify_repository(*r.repo, inv, VerifyOptions{1, false});
  for (const auto& p : rep.problems) {
    EXPECT_EQ(p.key.find(".history"), std::string::npos) << p.key << ": " << p.message;
    EXPECT_NE(p.kind, "missing") << p.key << ": " << p.message;
  }
}

TEST(InventoryTest, RecoveryWindowFollowsNewestTimelineAndStopsAtGaps) {
  MemRepo r;
  r.segs(1, 1, 6);
  r.segs(2, 5, 9, {8});
  r.repo->put_bytes("wal/00000002.history", as_bytes("1\t0/5000100\tpromoted\n"));
  write_manifest(*r.repo, manifest("20260101T000000Z-F", 1, 2, 3));
  RecoveryWindow w = recovery_window(load_inventory(*r.repo));
  ASSERT_TRUE(w.available);
  EXPECT_EQ(w.earliest_backup, "20260101T000000Z-F");
  EXPECT_EQ(w.earliest_lsn, lsn_of(3, 0x100));
  EXPECT_EQ(w.latest_timeline, 2u);
  EXPECT_EQ(w.latest_lsn, lsn_of(8));  // segment 8 of timeline 2 is missing
  EXPECT_EQ(w.latest_segment, seg_name(2, 7));

  MemRepo empty;
  EXPECT_FALSE(recovery_window(load_inventory(*empty.repo)).available);
}

TEST(InventoryTest, BackupWhoseStopSegmentIsMissingIsNotInTheWindow) {
  MemRepo r;
  r.segs(1, 1, 10, {3});
  write_manifest(*r.repo, manifest("20260101T000000Z-F", 1, 2, 3));
  write_manifest(*r.repo, manifest("20260102T000000Z-F", 1, 5, 6));
  RecoveryWindow w = recovery_window(load_inventory(*r.repo));
  ASSERT_TRUE(w.available);
  EXPECT_EQ(w.earliest_backup, "20260102T000000Z-F");
  EXPECT_EQ(w.latest_lsn, lsn_of(11));
}

}  // namespace
}  // namespace pgvault
