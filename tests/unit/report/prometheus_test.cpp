// archive-info over several repositories: lag, gaps, the JSON shape (fleet.h, fleet_report.h) and the
// Prometheus text (prometheus.h).
#include "common/report/prometheus.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "common/base/fs.h"
#include "common/report/fleet_report.h"
#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::uint32_t kSeg = kDefaultWalSegmentSize;

// A repository read with WAL segments [first, last] of timeline 1 (each 1000 bytes, storage time
// 1000 + segno) minus `missing`, and one full backup from segment 2 (stop 2026-01-01T00:01:00Z).
RepositoryView view(const std::string& name, std::uint64_t first, std::uint64_t last,
                    std::vector<std::uint64_t> missing = {}) {
  RepositoryView v;
  v.name = name;
  v.where = "memory:" + name;
  std::vector<ObjectInfo> objs;
  for (std::uint64_t s = first; s <= last; ++s) {
    if (std::find(missing.begin(), missing.end(), s) != missing.end()) continue;
    objs.push_back({keys::wal(*WalFileName::parse(segment_file_name(1, s, kSeg))), 1000,
                    static_cast<std::int64_t>(1000 + s)});
  }
  add_wal_listing(v.inv, objs);
  BackupManifest b = testing::backup_manifest("20260101T000000Z-F", 1, 2, 3, kSeg);
  b.total_bytes = 5000;
  b.stored_bytes = 700;
  v.inv.backups.push_back(b);
  v.window = recovery_window(v.inv);
  return v;
}

TEST(FleetTest, LagAndWindowGaps) {
  std::vector<RepositoryView> views;
  views.push_back(view("local", 1, 10));
  views.push_back(view("cloud", 1, 7, {5, 6}));
  RepositoryView broken;
  broken.name = "gone";
  broken.error = "bucket unreachable";
  views.push_back(std::move(broken));
  compute_lag(views);
  EXPECT_EQ(views[0].lag_segments, 0u);
  EXPECT_EQ(views[1].lag_segments, 3u);
  EXPECT_EQ(views[1].newest_segment, segment_file_name(1, 7, kSeg));
  EXPECT_EQ(window_gap_segments(views[1].inv), 2u);
  EXPECT_EQ(window_gap_segments(view("x", 1, 9, {1}).inv), 0u);  // before the backup: not in the window

  auto j = nlohmann::json::parse(fleet_json(views, {}));
  ASSERT_EQ(j["repositories"].size(), 3u);
  EXPECT_EQ(j["repositories"][1]["name"], "cloud");
  EXPECT_EQ(j["repositories"][1]["lag"]["segments_behind"], 3);
  EXPECT_EQ(j["repositories"][1]["lag"]["seconds_behind"], 3);
  EXPECT_EQ(j["repositories"][1]["backups"][0]["label"], "20260101T000000Z-F");  // the old object inside
  EXPECT_EQ(j["repositories"][2]["error"], "bucket unreachable");
  std::vector<RepositoryView> single;
  single.push_back(view("local", 1, 10));
  auto one = nlohmann::json::parse(fleet_json(single, {}));
  EXPECT_EQ(one["backups"].size(), 1u);  // one repository: the single-repository object, as before
  EXPECT_EQ(one["owed"]["segments"], 0);
  std::string text = fleet_text(views, {});
  EXPECT_NE(text.find("=== repository cloud ===\n"), std::string::npos);
  EXPECT_NE(text.find("3 segments behind the most advanced repository (3 s)"), std::string::npos);
  EXPECT_NE(text.find("=== repository gone ===\nERROR: bucket unreachable\n"), std::string::npos);
}

TEST(PrometheusTest, WritesFamiliesWithLabelsAndValues) {
  std::vector<RepositoryView> views;
  views.push_back(view("local", 1, 10));
  views.push_back(view("cl\"oud", 1, 7, {5, 6}));
  views[1].owed.segments = 4;
  views[1].owed.oldest_since = 1'700'000'000;
  RepositoryView broken;
  broken.name = "gone";
  broken.error = "x";
  views.push_back(std::move(broken));
  compute_lag(views);
  ServerStatus s;
  s.connected = true;
  s.archived_count = 12;
  s.failed_count = 2;
  s.ready_count = 1;
  const std::int64_t now = 1'767'225'660 + 100;  // 100 s after the backup stopped
  std::string t = prometheus_text(views, s, now);
  auto has = [&](const std::string& line) { return t.find("\n" + line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("# TYPE pgvault_backup_newest_age_seconds gauge")) << t;
  EXPECT_TRUE(has("pgvault_backup_newest_age_seconds{repository=\"local\"} 100"));
  EXPECT_TRUE(has("pgvault_backups{repository=\"local\",type=\"full\"} 1"));
  EXPECT_TRUE(has("pgvault_backups{repository=\"local\",type=\"incremental\"} 0"));
  EXPECT_TRUE(has("pgvault_backup_newest_duration_seconds{repository=\"local\"} 60"));
  EXPECT_TRUE(has("pgvault_backup_newest_size_bytes{repository=\"local\"} 5000"));
  EXPECT_TRUE(has("pgvault_wal_segments{repository=\"local\"} 10"));
  EXPECT_TRUE(has("pgvault_wal_stored_bytes{repository=\"local\"} 10000"));
  EXPECT_TRUE(has("pgvault_wal_gap_segments{repository=\"cl\\\"oud\"} 2"));
  EXPECT_TRUE(has("pgvault_wal_lag_segments{repository=\"cl\\\"oud\"} 3"));
  EXPECT_TRUE(has("pgvault_owed_segments{repository=\"cl\\\"oud\"} 4"));
  EXPECT_TRUE(has("pgvault_owed_oldest_age_seconds{repository=\"cl\\\"oud\"} " + std::to_string(now - 1'700'000'000)));
  EXPECT_TRUE(has("pgvault_repository_up{repository=\"gone\"} 0"));
  EXPECT_TRUE(has("# TYPE pgvault_archiver_failed_total counter"));
  EXPECT_TRUE(has("pgvault_archiver_archived_total 12"));
  EXPECT_TRUE(has("pgvault_archiver_ready_files 1"));
  EXPECT_EQ(t.find("pgvault_backups_incomplete{repository=\"gone\"}"), std::string::npos);
  // One HELP and TYPE per family, all its samples right after them.
  std::size_t type_at = t.find("# TYPE pgvault_repository_up gauge\n");
  std::size_t next_family = t.find("# HELP", type_at);
  EXPECT_NE(t.find("pgvault_repository_up{repository=\"gone\"} 0"), std::string::npos);
  EXPECT_LT(t.find("pgvault_repository_up{repository=\"gone\"}"), next_family);
  EXPECT_EQ(t.find("# TYPE pgvault_repository_up", type_at + 1), std::string::npos);
}

TEST(PrometheusTest, WritesTheFileAtomicallyAndReadable) {
  testing::TempDir dir;
  std::string path = dir.path() + "/pgvault.prom";
  write_metrics_file("pgvault_x 1\n", path);
  write_metrics_file("pgvault_x 2\n", path);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "pgvault_x 2\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_THROW_KIND(write_metrics_file("x", dir.path() + "/missing/pgvault.prom"), ErrorKind::NotFound);
}

}  // namespace
}  // namespace pgvault
