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

}  // namespace
}  // namespace pgvault
