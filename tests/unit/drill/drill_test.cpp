// The restore drill's pure parts: table specs, SQL splitting, the report's text, JSON and gauges, RPO.
#include "common/drill/drill.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

using namespace pgvault;

TEST(DrillSpecs, CountSpecHasThreeParts) {
  CountSpec s = parse_count_spec("appdb.public.orders");
  EXPECT_EQ(s.database, "appdb");
  EXPECT_EQ(s.schema, "public");
  EXPECT_EQ(s.table, "orders");
  EXPECT_EQ(s.name(), "appdb.public.orders");
  EXPECT_THROW_KIND(parse_count_spec("public.orders"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_count_spec("a.b.c.d"), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(parse_count_spec("a..c"), ErrorKind::InvalidInput);
}

TEST(DrillSpecs, CountListSplitsAtCommasAndBlanks) {
  auto l = parse_count_list(" a.b.c, d.e.f\tg.h.i,,");
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0].name(), "a.b.c");
  EXPECT_EQ(l[1].name(), "d.e.f");
  EXPECT_EQ(l[2].name(), "g.h.i");
  EXPECT_TRUE(parse_count_list("").empty());
  EXPECT_THROW_KIND(parse_count_list("a.b.c, x.y"), ErrorKind::InvalidInput);
}

TEST(DrillSpecs, SqlSplitsAtSemicolonsOutsideQuotesAndComments) {
  auto s = split_sql(
      "-- header; not a statement\n"
      "SELECT count(*) > 0 FROM t;\n"
      "SELECT 'a;b' = 'a;b'; SELECT \"x;y\" FROM q;\n"
      "/* a; comment */ SELECT $$;$$ = ';';\n"
      "SELECT $f$ ; $f$ <> ''\n"
      "; ;\n-- trailing\n");
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0], "SELECT count(*) > 0 FROM t");
  EXPECT_EQ(s[1], "SELECT 'a;b' = 'a;b'");
  EXPECT_EQ(s[2], "SELECT \"x;y\" FROM q");
  EXPECT_EQ(s[3], "SELECT $$;$$ = ';'");
  EXPECT_EQ(s[4], "SELECT $f$ ; $f$ <> ''");
  EXPECT_TRUE(split_sql("  -- only a comment\n").empty());
  EXPECT_EQ(split_sql("SELECT true").size(), 1u);  // no final semicolon
}

namespace {

DrillReport sample(bool pass) {
  DrillReport r;
  r.backup = "20261130T120000Z-F";
  r.pg_version = 15;
  r.backup_bytes = 40u << 20;
  r.stored_bytes = 5u << 20;
  r.restored_bytes = 40u << 20;
  r.restore_seconds = 2.5;
  r.recovery_seconds = 1.25;
  r.rpo_seconds = 42;
  r.newest_wal = "000000010000000000000007";
  r.finished_at = 1796040000;
  r.checks = {{"database postgres", true, "connects; pg_class has 415 rows"},
              {"count postgres.public.t", true, "1234"}};
  if (!pass) {
    r.failure = DrillFailure::Check;
    r.reason = "check failed: sql #2: returned f, not true: SELECT false";
    r.checks.push_back({"sql #2", false, "returned f, not true: SELECT false"});
  }
  return r;
}

}  // namespace

TEST(DrillReport, TextNamesVerdictRtoRpoAndChecks) {
  std::string t = drill_text(sample(true));
  EXPECT_EQ(t.rfind("drill PASSED\nbackup: 20261130T120000Z-F (PostgreSQL 15)\n", 0), 0u) << t;
  EXPECT_NE(t.find("RTO: 3.750 s (restore 2.500 s + recovery 1.250 s)"), std::string::npos) << t;
  EXPECT_NE(t.find("RPO: 42.000 s (newest archived WAL 000000010000000000000007)"), std::string::npos) << t;
  EXPECT_NE(t.find("ok    count postgres.public.t: 1234"), std::string::npos) << t;
  std::string f = drill_text(sample(false));
  EXPECT_EQ(f.rfind("drill FAILED (check-failed): check failed: sql #2", 0), 0u) << f;
  EXPECT_NE(f.find("FAIL  sql #2"), std::string::npos) << f;
}

TEST(DrillReport, JsonCarriesCountsAndTimes) {
  auto j = nlohmann::json::parse(drill_json(sample(true)));
  EXPECT_TRUE(j["passed"].get<bool>());
  EXPECT_EQ(j["failure"], "");
  EXPECT_EQ(j["counts"]["postgres.public.t"], 1234);
  EXPECT_DOUBLE_EQ(j["rto_seconds"].get<double>(), 3.75);
  EXPECT_DOUBLE_EQ(j["rpo_seconds"].get<double>(), 42);
  EXPECT_EQ(j["backup"], "20261130T120000Z-F");
  auto k = nlohmann::json::parse(drill_json(sample(false)));
  EXPECT_FALSE(k["passed"].get<bool>());
  EXPECT_EQ(k["failure"], "check-failed");
  DrillReport none = sample(true);
  none.rpo_seconds.reset();
  EXPECT_TRUE(nlohmann::json::parse(drill_json(none))["rpo_seconds"].is_null());
}

TEST(DrillReport, PrometheusGauges) {
  std::string p = drill_prometheus(sample(true));
  EXPECT_NE(p.find("# TYPE pgvault_drill_success gauge\npgvault_drill_success 1\n"), std::string::npos) << p;
  EXPECT_NE(p.find("\npgvault_drill_rto_seconds 3.750\n"), std::string::npos) << p;
  EXPECT_NE(p.find("\npgvault_drill_rpo_seconds 42.000\n"), std::string::npos) << p;
  EXPECT_NE(p.find("\npgvault_drill_table_rows{table=\"postgres.public.t\"} 1234\n"), std::string::npos) << p;
  EXPECT_NE(drill_prometheus(sample(false)).find("\npgvault_drill_success 0\n"), std::string::npos);
}

TEST(DrillReport, RpoFromTheNewestArchivedSegment) {
  Inventory inv;
  inv.wal[1].segments = {{1, 5, "000000010000000000000005", "k5", 1, 1000},
                         {1, 6, "000000010000000000000006", "k6", 1, 1900}};
  inv.wal[2].segments = {{2, 7, "000000020000000000000007", "k7", 1, 1500}};
  DrillReport r;
  fill_rpo(r, inv, 2000);
  ASSERT_TRUE(r.rpo_seconds);
  EXPECT_DOUBLE_EQ(*r.rpo_seconds, 500);  // the furthest segment, not the one stored last
  EXPECT_EQ(r.newest_wal, "000000020000000000000007");
  DrillReport empty;
  fill_rpo(empty, Inventory{}, 2000);
  EXPECT_FALSE(empty.rpo_seconds);
  DrillReport ahead;  // a store that rounds Last-Modified up to the next second
  fill_rpo(ahead, inv, 1499);
  EXPECT_DOUBLE_EQ(*ahead.rpo_seconds, 0);
}

TEST(DrillReport, FailureNamesAreTheToolsOutcomes) {
  EXPECT_EQ(failure_name(DrillFailure::Restore), "restore-failed");
  EXPECT_EQ(failure_name(DrillFailure::Server), "server-failed");
  EXPECT_EQ(failure_name(DrillFailure::Check), "check-failed");
  EXPECT_EQ(failure_name(DrillFailure::None), "");
}
