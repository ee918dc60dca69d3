// The inventory rendered as text and as JSON (archive-info, archive-info --json).
#include "common/report/inventory_report.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::kSmallSeg;
using testing::VerifyRepo;

TEST(InventoryVerifyTest, RendersTextAndJson) {
  VerifyRepo v;
  v.mem->objects.erase(v.seg_key_small(6));
  v.repo->put_bytes(keys::backup_bundle("20260105T000000Z-F", 0), as_bytes("x"));
  VerifyReport r = v.verify();
  Inventory inv = load_inventory(*v.repo);
  RecoveryWindow w = recovery_window(inv);
  std::string text = inventory_text("memory:", inv, w, &r);
  EXPECT_NE(text.find("20260101T000000Z-F"), std::string::npos);
  EXPECT_NE(text.find("20260105T000000Z-F"), std::string::npos);
  EXPECT_NE(text.find(segment_file_name(1, 6, kSmallSeg)), std::string::npos);  // the gap
  EXPECT_NE(text.find("PROBLEM missing"), std::string::npos);
  auto j = nlohmann::json::parse(inventory_json("memory:", inv, w, &r));
  EXPECT_EQ(j["backups"][0]["label"], "20260101T000000Z-F");
  EXPECT_EQ(j["backups"][0]["stop_lsn"], "0/300100");
  EXPECT_EQ(j["incomplete_backups"][0]["label"], "20260105T000000Z-F");
  EXPECT_EQ(j["wal"][0]["segments"], 7);
  EXPECT_EQ(j["wal"][0]["gaps"][0]["first"], segment_file_name(1, 6, kSmallSeg));
  EXPECT_EQ(j["recovery_window"]["available"], true);
  EXPECT_EQ(j["recovery_window"]["latest"]["lsn"], "0/600000");
  EXPECT_EQ(j["verify"]["problems"].size(), 1u);
  EXPECT_TRUE(nlohmann::json::parse(inventory_json("memory:", inv, w, nullptr))["verify"].is_null());
}

// archive-info --targets: restore points and commit times per timeline from the segments' indexes; a
// new timeline's first segment lists only what follows its switch point; invalid indexes are named.
TEST(InventoryTargetsTest, ListsRestorePointsAndCommitTimesPerTimeline) {
  constexpr std::uint32_t seg = kDefaultWalSegmentSize;
  auto name = [&](std::uint32_t tli, std::uint64_t s) { return segment_file_name(tli, s, seg); };
  Inventory inv;
  std::vector<ObjectInfo> objs;
  for (std::uint64_t s = 1; s <= 3; ++s) objs.push_back({keys::wal(*WalFileName::parse(name(1, s))), 10, 0});
  for (std::uint64_t s = 3; s <= 4; ++s) objs.push_back({keys::wal(*WalFileName::parse(name(2, s))), 10, 0});
  add_wal_listing(inv, objs);
  inv.histories[2].entries = {{1, 3ull * seg + 0x200, "promoted"}};
  auto rp = [](std::uint64_t lsn, const std::string& n) {
    return WalEvent{WalEventKind::RestorePoint, lsn, lsn + 0x40, 1000, 0, n};
  };
  std::map<std::string, WalIndex> idx;
  idx[name(1, 2)].restore_points = {rp(2ull * seg + 0x100, "a")};
  idx[name(1, 2)].min_time = 5000;
  idx[name(1, 2)].max_time = 6000;
  idx[name(1, 3)].restore_points = {rp(3ull * seg + 0x100, "b")};
  idx[name(1, 3)].max_time = 7000;
  idx[name(2, 3)].restore_points = {rp(3ull * seg + 0x100, "b"), rp(3ull * seg + 0x300, "c")};
  idx[name(2, 3)].min_time = 6500;
  idx[name(2, 3)].max_time = 9000;
  RecoveryTargets t = recovery_targets(inv, [&](const WalObject& s) -> std::optional<WalIndex> {
    if (s.name == name(2, 4)) throw Error(ErrorKind::Corruption, "walindex/x: bad digest");
    auto it = idx.find(s.name);
    return it == idx.end() ? std::nullopt : std::optional<WalIndex>(it->second);
  });
  ASSERT_EQ(t.timelines.size(), 2u);
  EXPECT_EQ(t.timelines[0].segments, 3u);
  EXPECT_EQ(t.timelines[0].indexed, 2u);
  EXPECT_EQ(t.timelines[0].first_commit, 5000);
  EXPECT_EQ(t.timelines[0].last_commit, 7000);
  ASSERT_EQ(t.timelines[0].restore_points.size(), 2u);
  ASSERT_EQ(t.timelines[1].restore_points.size(), 1u);  // "b" is timeline 1's, before the switch point
  EXPECT_EQ(t.timelines[1].restore_points[0].name, "c");
  EXPECT_EQ(t.timelines[1].indexed, 1u);
  ASSERT_EQ(t.invalid.size(), 1u);
  EXPECT_EQ(t.invalid[0].first, name(2, 4));

  RecoveryWindow w = recovery_window(inv);
  std::string text = inventory_text("memory:", inv, w, nullptr, &t);
  EXPECT_NE(text.find("recovery targets (from the WAL index of 3 of 5 segments;"), std::string::npos) << text;
  EXPECT_NE(text.find("INVALID index of " + name(2, 4)), std::string::npos) << text;
  EXPECT_NE(text.find(format_pg_timestamp(9000)), std::string::npos) << text;
  auto j = nlohmann::json::parse(inventory_json("memory:", inv, w, nullptr, &t));
  ASSERT_EQ(j["targets"]["restore_points"].size(), 3u);
  EXPECT_EQ(j["targets"]["restore_points"][2]["name"], "c");
  EXPECT_EQ(j["targets"]["restore_points"][2]["timeline"], 2);
  EXPECT_EQ(j["targets"]["restore_points"][2]["lsn"], format_lsn(3ull * seg + 0x300));
  EXPECT_EQ(j["targets"]["timelines"][0]["first_commit"], format_pg_timestamp(5000));
  EXPECT_EQ(j["targets"]["invalid"][0]["segment"], name(2, 4));
  EXPECT_TRUE(nlohmann::json::parse(inventory_json("memory:", inv, w, nullptr))["targets"].is_null());
}

}  // namespace
}  // namespace pgvault
