// archive-info --check: the rules with a faked clock, table-driven (report/check.h).
#include "common/report/check.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;
constexpr std::int64_t kHour = 3600;

CheckThresholds thresholds() {
  Config c;  // the defaults: backup 25h/49h, WAL 1h/6h, owed 64/512, lag 64/512
  return check_thresholds(c);
}

// A healthy repository: a backup an hour old, WAL archived a minute ago.
RepositoryFacts unreadable(const std::string& name, const std::string& error) {
  RepositoryFacts f;
  f.name = name;
  f.error = error;
  return f;
}

RepositoryFacts healthy(const std::string& name = "primary") {
  RepositoryFacts f;
  f.name = name;
  f.newest_backup = kNow - kHour;
  f.newest_backup_label = "20270115T070000Z-F";
  f.has_wal = true;
  f.newest_wal_time = kNow - 60;
  return f;
}

ServerStatus quiet_server() {
  ServerStatus s;
  s.connected = true;
  s.last_archived_time = kNow - 30 * 24 * kHour;  // a month ago: nothing written since
  s.ready_count = 0;
  return s;
}

struct Case {
  const char* name;
  std::function<void(std::vector<RepositoryFacts>&, std::optional<ServerStatus>&)> change;
  Severity status;
  const char* rule;  // of the worst finding ("" when none)
};

TEST(CheckTest, RulesGradeFindings) {
  const std::vector<Case> cases = {
      {"healthy", [](auto&, auto&) {}, Severity::Ok, ""},
      {"backup 24h old", [](auto& r, auto&) { r[0].newest_backup = kNow - 24 * kHour; }, Severity::Ok, ""},
      {"backup 25h old", [](auto& r, auto&) { r[0].newest_backup = kNow - 25 * kHour; }, Severity::Warning,
       "backup_age"},
      {"backup 49h old", [](auto& r, auto&) { r[0].newest_backup = kNow - 49 * kHour; }, Severity::Critical,
       "backup_age"},
      {"no backup", [](auto& r, auto&) { r[0].newest_backup.reset(); }, Severity::Critical, "backup_age"},
      {"repository WAL 2h old", [](auto& r, auto&) { r[0].newest_wal_time = kNow - 2 * kHour; },
       Severity::Warning, "wal_age"},
      {"repository WAL 7h old", [](auto& r, auto&) { r[0].newest_wal_time = kNow - 7 * kHour; },
       Severity::Critical, "wal_age"},
      {"no WAL", [](auto& r, auto&) { r[0].has_wal = false; }, Severity::Critical, "wal_age"},
      {"quiet server, old WAL", [](auto& r, auto& s) { s = quiet_server(); r[0].newest_wal_time = kNow - 9 * 24 * kHour; },
       Severity::Ok, ""},
      {"server: WAL waiting 2h",
       [](auto&, auto& s) { s = quiet_server(); s->ready_count = 3; s->oldest_ready_time = kNow - 2 * kHour; },
       Severity::Warning, "wal_age"},
      {"server: WAL waiting 7h",
       [](auto&, auto& s) { s = quiet_server(); s->ready_count = 3; s->oldest_ready_time = kNow - 7 * kHour; },
       Severity::Critical, "wal_age"},
      {"server: archive_command failing",
       [](auto&, auto& s) { s = quiet_server(); s->last_failed_time = kNow - 10; s->failed_count = 4; },
       Severity::Critical, "archiving"},
      {"server: an old failure, archived since",
       [](auto&, auto& s) { s = quiet_server(); s->last_failed_time = *s->last_archived_time - 10; },
       Severity::Ok, ""},
      {"server unreachable", [](auto&, auto& s) { s = ServerStatus{}; s->error = "cannot connect"; },
       Severity::Warning, "server"},
      {"gap", [](auto& r, auto&) { r[0].gap_segments = 2; }, Severity::Critical, "gaps"},
      {"owed 64", [](auto& r, auto&) { r[0].owed_segments = 64; }, Severity::Warning, "owed"},
      {"owed 512", [](auto& r, auto&) { r[0].owed_segments = 512; }, Severity::Critical, "owed"},
      {"owed queue unreadable", [](auto& r, auto&) { r[0].owed_error = "permission denied"; }, Severity::Warning,
       "owed"},
      {"lag 100", [](auto& r, auto&) { r.push_back(healthy("cloud")); r[1].lag_segments = 100; },
       Severity::Warning, "lag"},
      {"lag 600", [](auto& r, auto&) { r.push_back(healthy("cloud")); r[1].lag_segments = 600; },
       Severity::Critical, "lag"},
      {"verify problems", [](auto& r, auto&) { r[0].verify_problems = 1; }, Severity::Critical, "verify"},
      {"unreadable", [](auto& r, auto&) { r.push_back(unreadable("cloud", "bucket unreachable")); },
       Severity::Unknown, "unreadable"},
      {"critical beats unknown",
       [](auto& r, auto&) { r.push_back(unreadable("cloud", "x")); r[0].gap_segments = 1; },
       Severity::Critical, "gaps"},
  };
  for (const auto& c : cases) {
    std::vector<RepositoryFacts> repos = {healthy()};
    std::optional<ServerStatus> server;
    c.change(repos, server);
    CheckResult r = run_check(repos, server, thresholds(), kNow);
    EXPECT_EQ(r.status, c.status) << c.name;
    EXPECT_EQ(r.findings.empty() ? std::string() : r.findings.front().rule, c.rule) << c.name;
  }
}

TEST(CheckTest, ZeroThresholdTurnsARuleOff) {
  CheckThresholds t = thresholds();
  t.owed_warning = t.owed_critical = 0;
  RepositoryFacts f = healthy();
  f.owed_segments = 100000;
  EXPECT_EQ(run_check({f}, std::nullopt, t, kNow).status, Severity::Ok);
}

TEST(CheckTest, BadThresholdIsAConfigError) {
  Config c;
  c.check.backup_age_warning = "25 hours";
  EXPECT_THROW_KIND(check_thresholds(c), ErrorKind::Config);
}

TEST(CheckTest, TextHasTheSummaryFirstThenOneLinePerFinding) {
  RepositoryFacts f = healthy();
  f.newest_backup = kNow - 30 * kHour;
  f.gap_segments = 1;
  CheckResult r = run_check({f}, std::nullopt, thresholds(), kNow);
  std::string text = check_text(r, 1);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "PGVAULT CRITICAL - 1 critical, 1 warning: CRITICAL primary: 1 WAL segments missing in the recovery window");
  EXPECT_NE(text.find("\nWARNING primary: newest backup 20270115T070000Z-F finished"), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_EQ(check_text(run_check({healthy()}, std::nullopt, thresholds(), kNow), 1),
            "PGVAULT OK - 1 repositories healthy\n");
  auto j = nlohmann::json::parse(check_json(r, 1));
  EXPECT_EQ(j["status"], "critical");
  EXPECT_EQ(j["code"], 2);
  EXPECT_EQ(j["findings"].size(), 2u);
  EXPECT_EQ(j["findings"][1]["rule"], "backup_age");
  EXPECT_EQ(j["findings"][1]["repository"], "primary");
}

// verify_age: the last --verify's record against [check] verify_age_* (default off).
TEST(CheckTest, VerifyAgeGradesTheLastVerify) {
  CheckThresholds on = thresholds();
  on.verify_age_warning = 8 * 24 * kHour;
  on.verify_age_critical = 32 * 24 * kHour;
  struct VerifyCase {
    const char* name;
    std::optional<std::int64_t> age;
    std::uint64_t problems;
    const CheckThresholds t;
    Severity status;
  };
  const std::vector<VerifyCase> cases = {
      {"never verified, rule off (default)", std::nullopt, 0, thresholds(), Severity::Ok},
      {"never verified, rule on", std::nullopt, 0, on, Severity::Warning},
      {"verified a day ago", 24 * kHour, 0, on, Severity::Ok},
      {"verified 9 days ago", 9 * 24 * kHour, 0, on, Severity::Warning},
      {"verified 33 days ago", 33 * 24 * kHour, 0, on, Severity::Critical},
      {"old verify, rule off", 330 * 24 * kHour, 0, thresholds(), Severity::Ok},
      {"last verify failed, rule off", 60, 2, thresholds(), Severity::Critical},
      {"last verify failed, recent", 60, 1, on, Severity::Critical},
  };
  for (const auto& c : cases) {
    RepositoryFacts f = healthy();
    if (c.age) f.last_verify_time = kNow - *c.age;
    f.last_verify_problems = c.problems;
    CheckResult r = run_check({f}, std::nullopt, c.t, kNow);
    EXPECT_EQ(r.status, c.status) << c.name;
    if (c.status != Severity::Ok) {
      EXPECT_EQ(r.findings.front().rule, "verify_age") << c.name;
    }
  }
}

TEST(CheckTest, VerifyAgeThresholdsComeFromTheConfig) {
  Config c;
  EXPECT_EQ(check_thresholds(c).verify_age_warning, 0);
  c.check.verify_age_warning = "8d";
  c.check.verify_age_critical = "90s";
  EXPECT_EQ(check_thresholds(c).verify_age_warning, 8 * 24 * kHour);
  EXPECT_EQ(check_thresholds(c).verify_age_critical, 90);
  c.check.verify_age_critical = "soon";
  EXPECT_THROW_KIND(check_thresholds(c), ErrorKind::Config);
}

TEST(CheckTest, VerifyRecordBecomesFacts) {
  RepositoryView v;
  v.name = "primary";
  EXPECT_FALSE(repository_facts(v).last_verify_time);
  v.last_verify = VerifyRecord{kNow - 5, false, "all", 10, 100, 3};
  RepositoryFacts f = repository_facts(v);
  EXPECT_EQ(f.last_verify_time, kNow - 5);
  EXPECT_EQ(f.last_verify_problems, 3u);
  v.last_verify->ok = true;
  v.last_verify->problems = 0;
  EXPECT_EQ(repository_facts(v).last_verify_problems, 0u);
}

}  // namespace
}  // namespace pgvault
