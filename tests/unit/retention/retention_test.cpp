#include "common/retention/retention.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "common/repo/lock.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::uint32_t kSeg = 16u << 20;
constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kT0 = 1'800'000'000;  // 2027-01-15

std::string seg_name(std::uint32_t tli, std::uint64_t segno) { return segment_file_name(tli, segno, kSeg); }
std::string seg_key(std::uint32_t tli, std::uint64_t segno) { return keys::wal(*WalFileName::parse(seg_name(tli, segno))); }
std::uint64_t lsn_of(std::uint64_t segno, std::uint64_t off = 0) { return segno * kSeg + off; }

// A backup on `tli` from segment `start` to `stop`, finished at `stop_time` (unix seconds); started one
// minute earlier (the label says when).
BackupManifest backup(std::int64_t stop_time, std::uint32_t tli, std::uint64_t start, std::uint64_t stop,
                      const std::string& parent = "") {
  BackupManifest m;
  m.label = make_backup_label(stop_time - 60, !parent.empty());
  m.type = parent.empty() ? "full" : "incremental";
  m.parent = parent;
  m.timeline = tli;
  m.start_lsn = lsn_of(start, 0x28);
  m.stop_lsn = lsn_of(stop, 0x100);
  m.start_wal = seg_name(tli, start);
  m.stop_wal = seg_name(tli, stop);
  m.start_time = format_utc(stop_time - 60);
  m.stop_time = format_utc(stop_time);
  m.stored_bytes = 1000;
  return m;
}

// A synthetic inventory.
struct Inv {
  std::vector<ObjectInfo> objects;
  std::map<std::uint32_t, std::vector<HistoryEntry>> histories;
  std::vector<BackupManifest> backups;
  std::vector<IncompleteBackup> incomplete;

  Inv& segs(std::uint32_t tli, std::uint64_t first, std::uint64_t last, std::set<std::uint64_t> holes = {}) {
    for (std::uint64_t s = first; s <= last; ++s) {
      if (!holes.count(s)) objects.push_back({seg_key(tli, s), 100, 0});
    }
    return *this;
  }
  Inv& partial(std::uint32_t tli, std::uint64_t s) {
    objects.push_back({seg_key(tli, s) + ".partial", 100, 0});
    return *this;
  }
  Inv& history(std::uint32_t tli, std::vector<HistoryEntry> e) {
    objects.push_back({"wal/" + history_file_name(tli), 10, 0});
    histories[tli] = std::move(e);
    return *this;
  }
  Inv& add(const BackupManifest& m) {
    backups.push_back(m);
    return *this;
  }
  Inv& inc(const std::string& label, std::int64_t mtime, const std::string& error = "") {
    incomplete.push_back({label, 3, 300, mtime, error});
    return *this;
  }
  Inventory build() const {
    Inventory inv;
    add_wal_listing(inv, objects);
    for (auto& [tli, e] : histories) inv.histories[tli].entries = e;
    inv.backups = backups;
    std::sort(inv.backups.begin(), inv.backups.end(),
              [](const BackupManifest& a, const BackupManifest& b) { return a.label < b.label; });
    inv.incomplete = incomplete;
    return inv;
  }
};

RetentionPolicy policy(int full, std::optional<std::int64_t> window = std::nullopt, int min_full = 1) {
  RetentionPolicy p;
  p.full_backups = full;
  p.window = window;
  if (window) p.window_text = std::to_string(*window / kDay) + "d";
  p.min_full_backups = min_full;
  return p;
}

std::vector<std::string> labels(const RetentionPlan& p, RetentionAction a) {
  std::vector<std::string> out;
  for (const auto& b : p.backups) {
    if (b.action == a) out.push_back(b.label);
  }
  return out;
}

// Every deleted WAL file name, and every kept one.
std::set<std::string> wal_files(const RetentionPlan& p, RetentionAction a) {
  std::set<std::string> out;
  for (const auto& r : p.wal) {
    if (r.action != a) continue;
    if (r.kind == "history") {
      out.insert(r.first);
      continue;
    }
    if (a == RetentionAction::Delete) {
      for (const auto& k : r.keys) out.insert(k.substr(k.rfind('/') + 1));
    }
  }
  return out;
}

const BackupDecision& decision(const RetentionPlan& p, const std::string& label) {
  for (const auto& b : p.backups) {
    if (b.label == label) return b;
  }
  throw std::runtime_error("no decision for " + label);
}

bool has_rule(const BackupDecision& d, const std::string& rule) {
  return std::find(d.rules.begin(), d.rules.end(), rule) != d.rules.end();
}

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

// Backups used by several cases: three full backups a day apart, WAL 1..15 on timeline 1.
BackupManifest F(int day, std::uint64_t start, std::uint32_t tli = 1) {
  return backup(kT0 + day * kDay, tli, start, start + 1);
}

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

// ---- execution over an in-memory repository -------------------------------------------------------

Config plain_config() {
  Config c;
  c.repository.type = "memory";
  c.compression.method = Compression::None;
  return c;
}

struct MemRepo {
  testing::FaultStorage* fault = nullptr;
  testing::MemoryStorage* mem = nullptr;
  std::unique_ptr<Repository> repo;
  MemRepo() {
    auto m = std::make_unique<testing::MemoryStorage>();
    mem = m.get();
    auto f = std::make_unique<testing::FaultStorage>(std::move(m));
    fault = f.get();
    repo = std::make_unique<Repository>(std::move(f), plain_config());
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
  }
  void segs(std::uint32_t tli, std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t s = first; s <= last; ++s) repo->put_bytes(seg_key(tli, s), as_bytes("wal"));
  }
  void add(const BackupManifest& m) {
    repo->put_bytes(keys::backup_bundle(m.label, 0), as_bytes("bundle0"));
    repo->put_bytes(keys::backup_bundle(m.label, 1), as_bytes("bundle1"));
    write_manifest(*repo, m);
  }
  std::size_t count(const std::string& prefix) { return repo->storage().list(prefix).size(); }
  RetentionPlan plan(const RetentionPolicy& p, std::int64_t now) {
    return plan_retention(load_inventory(*repo), p, now, scan_retention_extras(*repo));
  }
};

TEST(RetentionExecTest, DeletesBackupThenWalAndReportsBytes) {
  MemRepo r;
  r.segs(1, 1, 15);
  BackupManifest b0 = F(0, 2), b1 = F(1, 6), b2 = F(2, 10);
  r.add(b0);
  r.add(b1);
  r.add(b2);
  std::vector<std::string> removed_order;
  r.fault->fail = [&](const std::string& op, const std::string& key) {
    if (op == "remove") removed_order.push_back(key);
  };
  RetentionPlan p = r.plan(policy(2), kT0 + 3 * kDay);
  RetentionExecOptions o;
  o.batch = 2;
  RetentionResult res = execute_retention(*r.repo, p, o);
  EXPECT_EQ(res.backups_deleted, 1u);
  EXPECT_EQ(res.wal_files_deleted, 5u);
  EXPECT_GT(res.bytes_freed, 0u);
  EXPECT_EQ(r.count(keys::backup_prefix(b0.label)), 0u);
  EXPECT_EQ(r.count(keys::backup_prefix(b1.label)), 3u);
  EXPECT_FALSE(r.repo->storage().head(seg_key(1, 5)));
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 6)));
  // Manifest first, then bundles, then WAL.
  ASSERT_GE(removed_order.size(), 3u);
  EXPECT_EQ(removed_order.front(), keys::backup_manifest(b0.label));
  auto pos = [&](const std::string& k) {
    return std::find(removed_order.begin(), removed_order.end(), k) - removed_order.begin();
  };
  EXPECT_LT(pos(keys::backup_bundle(b0.label, 1)), pos(seg_key(1, 1)));
  EXPECT_NE(retention_summary_line(p, res).find("deleted 1 backup, 5 WAL files"), std::string::npos)
      << retention_summary_line(p, res);

  // A second run finds nothing to do.
  RetentionPlan again = r.plan(policy(2), kT0 + 3 * kDay);
  EXPECT_EQ(again.backups_to_delete(), 0u);
  EXPECT_EQ(again.wal_files_to_delete(), 0u);
}

TEST(RetentionExecTest, CrashAfterManifestDeleteIsFinishedByTheNextRun) {
  MemRepo r;
  r.segs(1, 1, 15);
  BackupManifest b0 = F(0, 2), b1 = F(1, 6), b2 = F(2, 10);
  r.add(b0);
  r.add(b1);
  r.add(b2);
  struct Crash {};
  RetentionExecOptions o;
  o.hook = [](std::string_view step) {
    if (step == "manifest-delete") throw Crash{};
  };
  std::int64_t now = kT0 + 3 * kDay;
  EXPECT_THROW(execute_retention(*r.repo, r.plan(policy(1), now), o), Crash);

  // In between: the backup is gone from every reader (no manifest), its bundles remain, WAL untouched.
  Inventory mid = load_inventory(*r.repo);
  ASSERT_EQ(mid.backups.size(), 2u);
  EXPECT_EQ(mid.backups[0].label, b1.label);
  ASSERT_EQ(mid.incomplete.size(), 1u);
  EXPECT_EQ(mid.incomplete[0].label, b0.label);
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 1)));

  // The next run (same second: the leftovers are young) finishes the job.
  RetentionPlan p = r.plan(policy(1), now);
  ASSERT_EQ(p.incomplete.size(), 1u);
  EXPECT_EQ(p.incomplete[0].rule, "interrupted-delete");
  EXPECT_EQ(labels(p, RetentionAction::Delete), std::vector<std::string>{b1.label});
  RetentionResult res = execute_retention(*r.repo, p);
  EXPECT_EQ(res.incomplete_deleted, 1u);
  EXPECT_EQ(res.backups_deleted, 1u);
  EXPECT_EQ(r.count(keys::backup_prefix(b0.label)), 0u);
  EXPECT_EQ(r.count(keys::backup_prefix(b1.label)), 0u);
  EXPECT_FALSE(r.repo->storage().head(seg_key(1, 9)));
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 10)));
}

TEST(RetentionExecTest, StorageFailureMidwayLeavesAReadableRepository) {
  MemRepo r;
  r.segs(1, 1, 15);
  BackupManifest b0 = F(0, 2), b1 = F(1, 6);
  r.add(b0);
  r.add(b1);
  r.fault->fail = [&](const std::string& op, const std::string& key) {
    if (op == "remove" && key == keys::backup_bundle(b0.label, 1)) throw Error(ErrorKind::Transient, "503");
  };
  std::int64_t now = kT0 + 3 * kDay;
  try {
    execute_retention(*r.repo, r.plan(policy(1), now));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
  }
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 1)));  // no WAL deleted after a failed backup delete
  r.fault->fail = [](auto&, auto&) {};
  RetentionPlan p = r.plan(policy(1), now);
  EXPECT_EQ(p.incomplete_to_delete(), 1u);
  execute_retention(*r.repo, p);
  EXPECT_EQ(r.count(keys::backup_prefix(b0.label)), 0u);
  EXPECT_FALSE(r.repo->storage().head(seg_key(1, 5)));
}

// Another process's record, as a run that took the lock over writes it.
void take_lock_over(Storage& st) {
  write_all(st, "locks/retention",
            as_bytes("{\"tool\":\"retention-prune\",\"host\":\"elsewhere\",\"pid\":7,\"time\":" +
                     std::to_string(kT0) + ",\"token\":\"theirs\"}"));
}

// What a run that stopped right after the first backup's manifest delete leaves: b0's bundles, the
// other backups and every WAL segment.
void expect_stopped_after_first_manifest(MemRepo& r, const BackupManifest& b0, const BackupManifest& b1) {
  EXPECT_FALSE(r.repo->storage().head(keys::backup_manifest(b0.label)));
  EXPECT_TRUE(r.repo->storage().head(keys::backup_bundle(b0.label, 0)));
  EXPECT_TRUE(r.repo->storage().head(keys::backup_manifest(b1.label)));
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 1)));
}

TEST(RetentionExecTest, ALockTakenOverStopsDeletingAtOnce) {
  MemRepo r;
  r.segs(1, 1, 15);
  BackupManifest b0 = F(0, 2), b1 = F(1, 6), b2 = F(2, 10);
  r.add(b0);
  r.add(b1);
  r.add(b2);
  auto lock = RepositoryLock::acquire(r.repo->storage(), "retention", LockOptions{"retention-prune", 3600, kT0});
  RetentionExecOptions o;
  o.check = [&] { lock.check(); };
  o.hook = [&](std::string_view step) {
    if (step == "manifest-delete") take_lock_over(r.repo->storage());
  };
  try {
    execute_retention(*r.repo, r.plan(policy(1), kT0 + 3 * kDay), o);
    FAIL() << "went on deleting without its lock";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Conflict);
    EXPECT_NE(std::string(e.what()).find("lock locks/retention is no longer ours (now held by retention-prune on host elsewhere"),
              std::string::npos) << e.what();
  }
  expect_stopped_after_first_manifest(r, b0, b1);
  lock.release();  // the new holder's lock stays
  EXPECT_TRUE(r.repo->storage().head("locks/retention"));
}

TEST(RetentionExecTest, AFailedLockRefreshStopsDeletingAtOnce) {
  MemRepo r;
  r.segs(1, 1, 15);
  BackupManifest b0 = F(0, 2), b1 = F(1, 6), b2 = F(2, 10);
  r.add(b0);
  r.add(b1);
  r.add(b2);
  auto lock = RepositoryLock::acquire(r.repo->storage(), "retention", LockOptions{"retention-prune", 3600, kT0});
  std::atomic<bool> refresh_fails{false}, refresh_failed{false};
  r.fault->fail = [&](const std::string& op, const std::string& key) {
    if (op == "put" && key == "locks/retention" && refresh_fails) {
      refresh_failed = true;
      throw Error(ErrorKind::Transient, "s3 put locks/retention: HTTP 503 after 5 attempts");
    }
  };
  lock.keep_fresh(std::chrono::milliseconds(10));
  RetentionExecOptions o;
  o.check = [&] { lock.check(); };
  o.hook = [&](std::string_view step) {
    if (step != "manifest-delete") return;
    refresh_fails = true;
    for (int i = 0; i < 500 && !refresh_failed; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(refresh_failed);
  };
  try {
    execute_retention(*r.repo, r.plan(policy(1), kT0 + 3 * kDay), o);
    FAIL() << "went on deleting after its lock could not be refreshed";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Conflict);
    EXPECT_NE(std::string(e.what()).find("lock locks/retention was lost: s3 put locks/retention: HTTP 503"),
              std::string::npos) << e.what();
  }
  expect_stopped_after_first_manifest(r, b0, b1);
}

// ---- the repository lock --------------------------------------------------------------------------

TEST(RepositoryLockTest, SecondHolderIsRefusedWithTheHolderNamed) {
  testing::MemoryStorage st;
  LockOptions o{"retention-prune", 3600, kT0};
  auto first = RepositoryLock::acquire(st, "retention", o);
  EXPECT_TRUE(st.objects.count("locks/retention"));
  try {
    RepositoryLock::acquire(st, "retention", o);
    FAIL() << "second lock taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Conflict);
    std::string msg = e.what();
    EXPECT_NE(msg.find("locked by retention-prune on host"), std::string::npos) << msg;
    EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
    EXPECT_NE(msg.find("locks/retention"), std::string::npos) << msg;
  }
  first.release();
  EXPECT_FALSE(st.objects.count("locks/retention"));
  auto again = RepositoryLock::acquire(st, "retention", o);
  EXPECT_FALSE(again.taken_over());
}

TEST(RepositoryLockTest, StaleLocksAreTakenOver) {
  testing::MemoryStorage st;
  // Old by time.
  {
    auto held = RepositoryLock::acquire(st, "retention", LockOptions{"retention-prune", 3600, kT0});
    auto later = RepositoryLock::acquire(st, "retention", LockOptions{"retention-prune", 3600, kT0 + 3600});
    ASSERT_TRUE(later.taken_over());
    EXPECT_EQ(later.taken_over()->time, kT0);
    // The first holder's release leaves the new holder's lock alone.
    held.release();
    EXPECT_TRUE(st.objects.count("locks/retention"));
  }
  EXPECT_FALSE(st.objects.count("locks/retention"));
  // Held by a process of this host that no longer exists.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string rec = "{\"tool\":\"retention-prune\",\"host\":\"" + std::string(host) + "\",\"pid\":" +
                    std::to_string(child) + ",\"time\":" + std::to_string(kT0) + ",\"token\":\"x\"}";
  write_all(st, "locks/retention", as_bytes(rec));
  auto lock = RepositoryLock::acquire(st, "retention", LockOptions{"retention-prune", 3600, kT0 + 1});
  ASSERT_TRUE(lock.taken_over());
  EXPECT_EQ(lock.taken_over()->pid, child);
}

TEST(RepositoryLockTest, KeptFreshDuringALongRun) {
  testing::TempDir dir;
  auto st = make_fs_storage(dir.path() + "/repo");  // thread-safe, unlike MemoryStorage
  auto lock = RepositoryLock::acquire(*st, "retention", LockOptions{"retention-prune", 3600, kT0});
  lock.keep_fresh(std::chrono::milliseconds(20));
  std::int64_t seen = kT0;
  for (int i = 0; i < 300 && seen < kT0 + 2; ++i) {  // up to 3 s of real time
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto j = nlohmann::json::parse(read_all(*st, "locks/retention"));
    seen = j.at("time").get<std::int64_t>();
    EXPECT_EQ(j.at("tool"), "retention-prune");
  }
  EXPECT_GE(seen, kT0 + 2);
  // An hour after the original time the refreshed lock is not stale yet.
  EXPECT_THROW(RepositoryLock::acquire(*st, "retention", LockOptions{"retention-prune", 3600, kT0 + 3600}), Error);
  lock.release();  // stops the heartbeat, then deletes
  EXPECT_FALSE(st->head("locks/retention"));
}

TEST(RepositoryLockTest, RefreshAfterATakeoverIsRefused) {
  testing::MemoryStorage st;
  auto old = RepositoryLock::acquire(st, "retention", LockOptions{"retention-prune", 3600, kT0});
  auto now = RepositoryLock::acquire(st, "retention", LockOptions{"retention-prune", 3600, kT0 + 7200});
  try {
    old.refresh(kT0 + 7201);
    FAIL() << "refreshed a lock that is no longer ours";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Conflict);
    EXPECT_NE(std::string(e.what()).find("no longer ours"), std::string::npos) << e.what();
  }
  now.refresh(kT0 + 7300);
  EXPECT_EQ(nlohmann::json::parse(read_all(st, "locks/retention")).at("time"), kT0 + 7300);
}

TEST(RepositoryLockTest, UnparsableLockIsHeldUntilStale) {
  testing::MemoryStorage st;
  write_all(st, "locks/retention", as_bytes("garbage"));
  // MemoryStorage reports mtime 0: the record is as old as can be, so it is stale.
  auto lock = RepositoryLock::acquire(st, "retention", LockOptions{"retention-prune", 3600, kT0});
  EXPECT_TRUE(lock.taken_over());
}

}  // namespace
}  // namespace pgvault
