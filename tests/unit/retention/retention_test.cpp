#include "common/retention/retention.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "retention/retention_fixtures.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using namespace retention_fixtures;

// ---- table-driven planning cases -----------------------------------------------------------------

struct Case {
  std::string name;
  Inv inv;
  RetentionPolicy policy;
  std::int64_t now;
  std::vector<int> kept;                  // indexes into inv.backups (as added)
  std::optional<std::uint64_t> cutoff;    // WAL cutoff segment; nullopt = no WAL deleted
  std::map<int, std::string> rule_of;     // backup index -> a rule expected among its rules
};

std::vector<Case> cases() {
  std::vector<Case> c;
  auto three = [] { return Inv().segs(1, 1, 15).add(F(0, 2)).add(F(1, 6)).add(F(2, 10)); };

  c.push_back({"empty repository", Inv(), policy(2), kT0, {}, std::nullopt, {}});
  c.push_back({"WAL but no backup deletes nothing", Inv().segs(1, 1, 20).history(2, {{1, lsn_of(9), ""}}).segs(2, 9, 12),
               policy(1), kT0, {}, std::nullopt, {}});
  c.push_back({"full_backups=2 deletes the oldest and the WAL before the second", three(), policy(2), kT0 + 3 * kDay,
               {1, 2}, 6, {{1, "full-backups"}, {2, "newest"}}});
  c.push_back({"full_backups=3 keeps all", three(), policy(3), kT0 + 3 * kDay, {0, 1, 2}, 2, {}});
  c.push_back({"full_backups=1 with min_full_backups=2: the floor wins", three(), policy(1, std::nullopt, 2),
               kT0 + 3 * kDay, {1, 2}, 6, {{1, "min-full-backups"}}});
  c.push_back({"full_backups=1", three(), policy(1), kT0 + 3 * kDay, {2}, 10, {{2, "full-backups"}}});

  // Window: backups finished at days 0, 10, 20, 25; now = day 30; window 7d starts at day 23.
  auto spread = [] {
    return Inv().segs(1, 1, 30).add(F(0, 2)).add(F(10, 8)).add(F(20, 14)).add(F(25, 20));
  };
  c.push_back({"window keeps backups inside plus the newest before its start", spread(), policy(0, 7 * kDay),
               kT0 + 30 * kDay, {2, 3}, 14, {{2, "window"}, {3, "window"}}});
  c.push_back({"window start exactly at a stop time counts as inside", spread(), policy(0, 10 * kDay),
               kT0 + 30 * kDay, {1, 2, 3}, 8, {{1, "window"}}});
  c.push_back({"window covering everything keeps everything", spread(), policy(0, 365 * kDay), kT0 + 30 * kDay,
               {0, 1, 2, 3}, 2, {}});
  c.push_back({"window after every backup keeps the newest (window base and floor)", spread(), policy(0, 1 * kDay),
               kT0 + 60 * kDay, {3}, 20, {{3, "window"}}});
  c.push_back({"both rules: either keeps", spread(), policy(1, 12 * kDay), kT0 + 30 * kDay, {1, 2, 3}, 8,
               {{1, "window"}, {3, "full-backups"}}});

  // A clock that jumps back: the newest backup finished after "now".
  c.push_back({"backup finished in the future is kept", spread(), policy(0, 1 * kDay), kT0 + 22 * kDay, {2, 3}, 14,
               {{3, "future"}, {2, "window"}}});
  c.push_back({"future backup under full_backups too", spread(), policy(1), kT0 + 5 * kDay, {1, 2, 3}, 8,
               {{1, "future"}, {2, "future"}, {3, "full-backups"}}});

  // A backup whose WAL start is missing is not counted: the next older one is kept too.
  c.push_back({"newest backup's WAL start missing: an older restorable one is kept", Inv().segs(1, 1, 15, {10})
                   .add(F(0, 2)).add(F(1, 6)).add(F(2, 10)),
               policy(1), kT0 + 3 * kDay, {1, 2}, 6, {{1, "full-backups"}, {2, "full-backups"}}});
  c.push_back({"window base whose WAL is missing: looks further back", Inv().segs(1, 1, 30, {14})
                   .add(F(0, 2)).add(F(10, 8)).add(F(20, 14)).add(F(25, 20)),
               policy(0, 7 * kDay), kT0 + 30 * kDay, {1, 2, 3}, 8, {{1, "window"}}});

  // Timelines: a promotion to timeline 2 at segment 8 (switch inside it); backups on both.
  auto promoted = [] {
    return Inv()
        .segs(1, 1, 12)
        .partial(1, 8)
        .history(2, {{1, lsn_of(8, 0x5000), "promoted"}})
        .segs(2, 8, 20)
        .add(F(0, 2, 1))
        .add(F(1, 10, 2))
        .add(F(2, 14, 2));
  };
  c.push_back({"promotion: WAL before the cutoff goes on every timeline, history stays", promoted(), policy(2),
               kT0 + 3 * kDay, {1, 2}, 10, {}});
  c.push_back({"promotion: backup on the old timeline kept, nothing after its start deleted", promoted(), policy(3),
               kT0 + 3 * kDay, {0, 1, 2}, 2, {}});

  return c;
}

TEST(RetentionPlanTest, Table) {
  for (const Case& tc : cases()) {
    SCOPED_TRACE(tc.name);
    Inventory inv = tc.inv.build();
    RetentionPlan p = plan_retention(inv, tc.policy, tc.now);
    std::vector<std::string> want_kept, want_deleted;
    for (std::size_t i = 0; i < tc.inv.backups.size(); ++i) {
      bool k = std::find(tc.kept.begin(), tc.kept.end(), static_cast<int>(i)) != tc.kept.end();
      (k ? want_kept : want_deleted).push_back(tc.inv.backups[i].label);
    }
    std::sort(want_kept.begin(), want_kept.end());
    std::sort(want_deleted.begin(), want_deleted.end());
    EXPECT_EQ(labels(p, RetentionAction::Keep), want_kept);
    EXPECT_EQ(labels(p, RetentionAction::Delete), want_deleted);
    EXPECT_EQ(p.wal_cutoff_segno, tc.cutoff);
    for (const auto& [i, rule] : tc.rule_of) {
      const auto& d = decision(p, tc.inv.backups[static_cast<std::size_t>(i)].label);
      EXPECT_TRUE(has_rule(d, rule)) << d.label << " lacks rule " << rule << " (has " << d.rule << ")";
    }
    for (const auto& d : p.backups) {
      EXPECT_FALSE(d.rule.empty());
      EXPECT_FALSE(d.reason.empty());
      if (d.action == RetentionAction::Delete) {
        EXPECT_EQ(d.rule, "expired");
      }
    }
    // The WAL invariants, whatever the case.
    std::set<std::string> deleted = wal_files(p, RetentionAction::Delete);
    for (const auto& r : p.wal) {
      if (r.kind == "history") {
        EXPECT_EQ(r.action, RetentionAction::Keep);
      }
      if (r.action == RetentionAction::Keep) {
        EXPECT_TRUE(r.keys.empty());
      }
    }
    for (const auto& name : deleted) {
      auto w = WalFileName::parse(name);
      ASSERT_TRUE(w);
      ASSERT_TRUE(tc.cutoff);
      EXPECT_LT(segment_number(w->log, w->seg, kSeg), *tc.cutoff) << name;
    }
    if (tc.cutoff) {
      // Everything below the cutoff is deleted on every timeline; everything at or above it kept.
      for (const auto& [tli, tl] : inv.wal) {
        for (const auto& s : tl.segments) EXPECT_EQ(deleted.count(s.name) == 1, s.segno < *tc.cutoff) << s.name;
        for (const auto& s : tl.partials) EXPECT_EQ(deleted.count(s.name) == 1, s.segno < *tc.cutoff) << s.name;
      }
      // No kept backup loses WAL from its start onwards.
      for (const auto& b : p.backups) {
        if (b.action == RetentionAction::Keep) {
          EXPECT_GE(b.start_segno, *tc.cutoff) << b.label;
        }
      }
    } else {
      EXPECT_TRUE(deleted.empty());
    }
  }
}

TEST(RetentionPlanTest, PromotionDeletesOldTimelineUpToCutoffOnly) {
  Inventory inv = Inv()
                      .segs(1, 1, 12)
                      .partial(1, 8)
                      .history(2, {{1, lsn_of(8, 0x5000), "promoted"}})
                      .segs(2, 8, 20)
                      .add(F(0, 2, 1))
                      .add(F(1, 10, 2))
                      .add(F(2, 14, 2))
                      .build();
  RetentionPlan p = plan_retention(inv, policy(2), kT0 + 3 * kDay);
  std::set<std::string> deleted = wal_files(p, RetentionAction::Delete);
  EXPECT_TRUE(deleted.count(seg_name(1, 9)));
  EXPECT_TRUE(deleted.count(seg_name(1, 8) + ".partial"));
  EXPECT_TRUE(deleted.count(seg_name(2, 9)));
  EXPECT_FALSE(deleted.count(seg_name(1, 10)));  // the old timeline past the cutoff stays
  EXPECT_FALSE(deleted.count(seg_name(2, 10)));
  EXPECT_EQ(p.wal_cutoff, seg_name(2, 10));
  bool history_kept = false;
  for (const auto& r : p.wal) history_kept |= r.kind == "history" && r.action == RetentionAction::Keep;
  EXPECT_TRUE(history_kept);
  EXPECT_EQ(p.wal_files_to_delete(), deleted.size());
}

TEST(RetentionPlanTest, IncrementalsKeepTheirParentsAndDependents) {
  BackupManifest f1 = F(0, 2), f2 = F(1, 6);
  BackupManifest i3 = backup(kT0 + 2 * kDay, 1, 10, 11, f2.label);
  BackupManifest i4 = backup(kT0 + 3 * kDay, 1, 12, 13, i3.label);
  Inv base = Inv().segs(1, 1, 15).add(f1).add(f2).add(i3).add(i4);

  // full_backups = 1: f2 and every incremental that depends on it.
  RetentionPlan p = plan_retention(base.build(), policy(1), kT0 + 4 * kDay);
  EXPECT_EQ(labels(p, RetentionAction::Delete), std::vector<std::string>{f1.label});
  EXPECT_TRUE(has_rule(decision(p, i3.label), "full-backups"));
  EXPECT_EQ(p.wal_cutoff_segno, 6u);

  // window keeps i4 (inside) and i3 (newest before the start): their parent f2 comes along.
  p = plan_retention(base.build(), policy(0, kDay + kDay / 2), kT0 + 4 * kDay);
  EXPECT_EQ(labels(p, RetentionAction::Delete), std::vector<std::string>{f1.label});
  EXPECT_TRUE(has_rule(decision(p, f2.label), "parent"));

  // An incremental whose parent is gone is kept by the floor but says so.
  BackupManifest orphan = backup(kT0 + 5 * kDay, 1, 14, 15, "20200101T000000Z-F");
  p = plan_retention(Inv().segs(1, 1, 15).add(f1).add(orphan).build(), policy(1), kT0 + 6 * kDay);
  EXPECT_EQ(decision(p, orphan.label).action, RetentionAction::Keep);
  EXPECT_NE(decision(p, orphan.label).reason.find("missing"), std::string::npos);
  EXPECT_EQ(decision(p, f1.label).action, RetentionAction::Keep);  // the newest restorable full: floor
}

TEST(RetentionPlanTest, IncompleteBackupsAndTemporaries) {
  std::int64_t now = kT0 + 10 * kDay;
  RetentionExtras extras;
  extras.tombstones.insert("20270120T000000Z-F");
  extras.temporaries = {{"wal/.pgvault-tmp.old", 5, now - 2 * kDay}, {"wal/.pgvault-tmp.new", 7, now - 60}};
  Inventory inv = Inv()
                      .segs(1, 1, 15)
                      .add(F(0, 2))
                      .add(F(1, 6))
                      .inc("20270201T000000Z-F", now - 2 * kDay)      // abandoned
                      .inc("20270202T000000Z-F", now - 3600 + 1)      // a base-push running now
                      .inc("20270203T000000Z-F", now + kDay)          // dated in the future
                      .inc("20270204T000000Z-F", 0)                   // no mtime
                      .inc("20270205T000000Z-F", now - 9 * kDay, "corrupt manifest")
                      .inc("20270120T000000Z-F", now - 60)            // retention interrupted
                      .build();
  RetentionPolicy pol = policy(1);
  pol.incomplete_grace = 3600;
  pol.incomplete_grace_text = "1h";
  RetentionPlan p = plan_retention(inv, pol, now, extras);
  std::map<std::string, std::pair<RetentionAction, std::string>> got;
  for (const auto& d : p.incomplete) got[d.label] = {d.action, d.rule};
  using A = RetentionAction;
  EXPECT_EQ(got["20270201T000000Z-F"], std::make_pair(A::Delete, std::string("expired-incomplete")));
  EXPECT_EQ(got["20270202T000000Z-F"], std::make_pair(A::Keep, std::string("grace")));
  EXPECT_EQ(got["20270203T000000Z-F"], std::make_pair(A::Keep, std::string("grace")));
  EXPECT_EQ(got["20270204T000000Z-F"], std::make_pair(A::Keep, std::string("unknown-age")));
  EXPECT_EQ(got["20270205T000000Z-F"], std::make_pair(A::Keep, std::string("unreadable-manifest")));
  EXPECT_EQ(got["20270120T000000Z-F"], std::make_pair(A::Delete, std::string("interrupted-delete")));
  ASSERT_EQ(p.temporaries.size(), 2u);
  EXPECT_EQ(p.temporaries[0].action, A::Delete);
  EXPECT_EQ(p.temporaries[1].action, A::Keep);
  // These incompletes are all newer than the oldest kept backup: WAL is still pruned.
  EXPECT_EQ(p.wal_cutoff_segno, 6u);
  EXPECT_EQ(p.incomplete_to_delete(), 2u);
}

TEST(RetentionPlanTest, RunningBaseOlderThanOldestKeptBlocksWalDeletion) {
  // A long base-push started before the newest complete backup (its label sorts first) may need WAL from
  // before that backup's start: no WAL is deleted while it may be running.
  std::int64_t now = kT0 + 10 * kDay;
  BackupManifest f1 = F(0, 2), f2 = F(9, 8);
  std::string running = make_backup_label(kT0 + 8 * kDay, false);
  ASSERT_LT(running, f2.label);
  Inventory inv = Inv().segs(1, 1, 15).add(f1).add(f2).inc(running, now - 60).build();
  RetentionPlan p = plan_retention(inv, policy(1), now);
  EXPECT_EQ(labels(p, RetentionAction::Delete), std::vector<std::string>{f1.label});
  EXPECT_FALSE(p.wal_cutoff_segno);
  EXPECT_EQ(p.wal_rule, "blocked");
  EXPECT_EQ(p.wal_files_to_delete(), 0u);

  // Same with an unreadable manifest.
  inv = Inv().segs(1, 1, 15).add(f1).add(f2).inc(running, now - 5 * kDay, "wrong key").build();
  p = plan_retention(inv, policy(1), now);
  EXPECT_EQ(p.wal_rule, "blocked");
  EXPECT_EQ(p.wal_files_to_delete(), 0u);
}

// ---- policy ---------------------------------------------------------------------------------------

TEST(RetentionPolicyTest, FromConfigAndBadValues) {
  auto cfg = [](const std::string& toml) { return parse_config(toml, "test.toml", false); };
  RetentionPolicy p = retention_policy(cfg("[retention]\nfull_backups = 2\nwindow = \"30d\"\n"));
  EXPECT_EQ(p.full_backups, 2);
  EXPECT_EQ(p.window, 30 * kDay);
  EXPECT_EQ(p.min_full_backups, 1);
  EXPECT_EQ(p.incomplete_grace, kDay);

  auto config_error = [&](const std::string& toml, const std::string& needle) {
    try {
      retention_policy(cfg(toml));
      ADD_FAILURE() << "no error for " << toml;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Config) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  config_error("", "no rule is enabled");
  config_error("[retention]\nfull_backups = 0\nwindow = \"\"\n", "no rule is enabled");
  config_error("[retention]\nfull_backups = -1\n", "full_backups");
  config_error("[retention]\nwindow = \"0d\"\n", "window");
  config_error("[retention]\nwindow = \"30x\"\n", "window");
  config_error("[retention]\nwindow = \"-3d\"\n", "window");
  config_error("[retention]\nfull_backups = 1\nmin_full_backups = 0\n", "min_full_backups");
  config_error("[retention]\nfull_backups = 1\nincomplete_grace = \"30m\"\n", "incomplete_grace");
  config_error("[retention]\nfull_backups = 1\nincomplete_grace = \"1y\"\n", "incomplete_grace");
}

// ---- reports --------------------------------------------------------------------------------------

TEST(RetentionReportTest, JsonNamesEveryDecision) {
  Inventory inv = Inv().segs(1, 1, 15).add(F(0, 2)).add(F(1, 6)).add(F(2, 10)).build();
  RetentionPlan p = plan_retention(inv, policy(2), kT0 + 3 * kDay);
  auto j = nlohmann::json::parse(retention_plan_json("memory:", p, true, nullptr));
  ASSERT_EQ(j["backups"].size(), 3u);
  EXPECT_EQ(j["backups"][0]["action"], "delete");
  EXPECT_EQ(j["backups"][0]["rule"], "expired");
  EXPECT_EQ(j["backups"][1]["action"], "keep");
  EXPECT_EQ(j["backups"][1]["rule"], "full-backups");
  EXPECT_EQ(j["wal"]["cutoff"], seg_name(1, 6));
  ASSERT_EQ(j["wal"]["ranges"].size(), 2u);
  EXPECT_EQ(j["wal"]["ranges"][0]["first"], seg_name(1, 1));
  EXPECT_EQ(j["wal"]["ranges"][0]["last"], seg_name(1, 5));
  EXPECT_EQ(j["wal"]["ranges"][0]["action"], "delete");
  EXPECT_EQ(j["wal"]["ranges"][1]["rule"], "needed");
  EXPECT_EQ(j["plan"]["backups_delete"], 1);
  EXPECT_EQ(j["plan"]["wal_files_delete"], 5);
  EXPECT_TRUE(j["dry_run"].get<bool>());
  EXPECT_TRUE(j["result"].is_null());
  std::string text = retention_plan_text("memory:", p);
  EXPECT_NE(text.find("DELETE  backup " + inv.backups[0].label), std::string::npos) << text;
  EXPECT_NE(text.find("plan: delete 1 backup"), std::string::npos) << text;
}

}  // namespace
}  // namespace pgvault
