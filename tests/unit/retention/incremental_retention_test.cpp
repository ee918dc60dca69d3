// Retention with incremental backups: the weekly-full, daily-incremental schedule under full_backups,
// window and incremental_window, as a table; whatever the policy, no ancestor of a kept backup is
// deleted and WAL stays from the oldest kept backup's start (an ancestor kept only as one included).
#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "common/repo/chain.h"
#include "retention/retention_fixtures.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using namespace retention_fixtures;

// Day d's backup starts in segment 2 + 2d. Fulls on days 0, 7, 14, 21; an incremental every other day,
// based on the day before. Names: "F14", "I15", ...
struct Weekly {
  Inv inv;
  std::map<std::string, std::string> label_of;  // "F14" -> its label
  std::map<std::string, std::string> name_of;   // label -> "F14"
  Weekly() {
    inv.segs(1, 1, 60);
    std::string prev;
    for (int d = 0; d <= 24; ++d) {
      bool full = d % 7 == 0;
      BackupManifest m = backup(kT0 + d * kDay, 1, 2 + 2 * static_cast<std::uint64_t>(d), 3 + 2 * static_cast<std::uint64_t>(d),
                                full ? "" : prev);
      std::string name = (full ? "F" : "I") + std::to_string(d);
      label_of[name] = m.label;
      name_of[m.label] = name;
      prev = m.label;
      inv.add(m);
    }
  }
};

RetentionPolicy with_incremental_window(RetentionPolicy p, std::int64_t days) {
  p.incremental_window = days * kDay;
  p.incremental_window_text = std::to_string(days) + "d";
  return p;
}

struct Case {
  std::string name;
  RetentionPolicy policy;
  std::string kept;          // names, space-separated, oldest first
  int cutoff_day;            // the WAL cutoff is the start of this day's backup
  std::map<std::string, std::string> rule_of;
};

TEST(IncrementalRetention, Table) {
  const std::int64_t now = kT0 + 24 * kDay + kDay / 2;  // day 24.5
  std::vector<Case> cases = {
      {"fulls kept 2, incrementals 7 days: the parents of kept incrementals stay, older than 7 days or not",
       with_incremental_window(policy(2), 7), "F14 I15 I16 I17 I18 I19 I20 F21 I22 I23 I24", 14,
       {{"I15", "parent"}, {"I18", "full-backups"}, {"F14", "full-backups"}}},
      {"fulls kept 2, no incremental window: every incremental of a kept full",
       policy(2), "F14 I15 I16 I17 I18 I19 I20 F21 I22 I23 I24", 14, {{"I15", "full-backups"}}},
      {"fulls kept 2, incrementals 2 days: the newest chain only", with_incremental_window(policy(2), 2),
       "F14 F21 I22 I23 I24", 14, {{"I23", "full-backups"}, {"I22", "parent"}}},
      {"fulls kept 1, incrementals 7 days: incrementals of a deleted full go", with_incremental_window(policy(1), 7),
       "F21 I22 I23 I24", 21, {{"F21", "full-backups"}}},
      {"window 10 days, incrementals 3 days: the window base is a full", with_incremental_window(policy(0, 10 * kDay), 3),
       "F14 F21 I22 I23 I24", 14, {{"F14", "window"}, {"I22", "window"}}},
      {"window 1 day: its base is an incremental, whose ancestors stay and hold the WAL",
       policy(0, 1 * kDay), "F21 I22 I23 I24", 21, {{"F21", "parent"}, {"I23", "window"}}},
  };
  Weekly w;
  Inventory inv = w.inv.build();
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    RetentionPlan p = plan_retention(inv, tc.policy, now);
    std::string kept;
    for (const auto& l : labels(p, RetentionAction::Keep)) kept += (kept.empty() ? "" : " ") + w.name_of[l];
    EXPECT_EQ(kept, tc.kept);
    ASSERT_TRUE(p.wal_cutoff_segno);
    EXPECT_EQ(*p.wal_cutoff_segno, 2u + 2u * static_cast<std::uint64_t>(tc.cutoff_day));
    for (const auto& [name, rule] : tc.rule_of) {
      const BackupDecision& d = decision(p, w.label_of.at(name));
      EXPECT_TRUE(has_rule(d, rule)) << name << " lacks rule " << rule << " (has " << d.rule << ": " << d.reason << ")";
    }
    // The invariant: every ancestor of a kept backup is kept.
    for (const auto& b : inv.backups) {
      if (decision(p, b.label).action != RetentionAction::Keep) continue;
      BackupChain c = resolve_chain(inv, b);
      ASSERT_TRUE(c.complete()) << c.problem;
      for (const BackupManifest* m : c.members) {
        EXPECT_EQ(decision(p, m->label).action, RetentionAction::Keep) << w.name_of[m->label] << " is an ancestor of kept "
                                                                       << w.name_of[b.label];
      }
    }
  }
}

TEST(IncrementalRetention, DeletedIncrementalsSayWhy) {
  Weekly w;
  RetentionPlan p = plan_retention(w.inv.build(), with_incremental_window(policy(2), 2), kT0 + 24 * kDay + kDay / 2);
  const BackupDecision& d = decision(p, w.label_of.at("I20"));
  EXPECT_EQ(d.action, RetentionAction::Delete);
  EXPECT_NE(d.reason.find("an incremental older than the incremental window (2d)"), std::string::npos) << d.reason;
  EXPECT_NE(retention_plan_text("r", p).find("incremental_window 2d"), std::string::npos);
}

// An incremental whose chain is broken cannot serve as the window's base backup.
TEST(IncrementalRetention, ABrokenChainIsNotRestorable) {
  BackupManifest f = F(0, 2);
  BackupManifest orphan = backup(kT0 + 5 * kDay, 1, 12, 13, "20200101T000000Z-F");
  BackupManifest last = F(9, 20);
  RetentionPlan p = plan_retention(Inv().segs(1, 1, 30).add(f).add(orphan).add(last).build(), policy(0, 2 * kDay),
                                   kT0 + 10 * kDay);
  EXPECT_FALSE(decision(p, orphan.label).restorable);
  EXPECT_TRUE(decision(p, f.label).restorable);
  EXPECT_EQ(decision(p, f.label).action, RetentionAction::Keep);  // the window's base: the orphan cannot be
}

TEST(IncrementalRetention, PolicyKeyFromConfig) {
  auto cfg = [](const std::string& toml) { return parse_config(toml, "test.toml", false); };
  RetentionPolicy p = retention_policy(cfg("[retention]\nfull_backups = 4\nincremental_window = \"7d\"\n"));
  EXPECT_EQ(p.incremental_window, 7 * kDay);
  EXPECT_EQ(p.incremental_window_text, "7d");
  EXPECT_FALSE(retention_policy(cfg("[retention]\nfull_backups = 4\n")).incremental_window);
  for (const char* bad : {"0d", "7x"}) {
    try {
      retention_policy(cfg(std::string("[retention]\nfull_backups = 4\nincremental_window = \"") + bad + "\"\n"));
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Config);
      EXPECT_NE(std::string(e.what()).find("test.toml line 3"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("incremental_window"), std::string::npos) << e.what();
    }
  }
  // Alone it is no rule: which fulls to keep is still to be said.
  EXPECT_THROW_KIND(retention_policy(cfg("[retention]\nincremental_window = \"7d\"\n")), ErrorKind::Config);
}

}  // namespace
}  // namespace pgvault
