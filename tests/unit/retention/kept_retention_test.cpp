// Retention with kept backups (repo/marks.h), as a table: a kept backup, its ancestors and its WAL from
// its start on stay whatever the policy says; released (or annotated only) it goes as any other.
#include <gtest/gtest.h>

#include "common/repo/lock.h"
#include "common/repo/marks.h"
#include "common/retention/marks_run.h"
#include "retention/retention_fixtures.h"
#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using namespace retention_fixtures;
using testing::VerifyRepo;

// Day d's backup starts in segment 2 + 2d. Fulls on days 0 and 4, an incremental on the other days,
// based on the day before. Names: "F0", "I1", ...
struct Chain {
  Inventory inv;
  std::map<std::string, std::string> label_of, name_of;
  Chain() {
    Inv b;
    b.segs(1, 1, 30);
    std::string prev;
    for (int d = 0; d <= 7; ++d) {
      bool full = d % 4 == 0;
      auto start = 2 + 2 * static_cast<std::uint64_t>(d);
      BackupManifest m = backup(kT0 + d * kDay, 1, start, start + 1, full ? "" : prev);
      std::string name = (full ? "F" : "I") + std::to_string(d);
      label_of[name] = m.label;
      name_of[m.label] = name;
      prev = m.label;
      b.add(m);
    }
    inv = b.build();
  }
  void mark(const std::string& name, bool keep, const std::string& error = "") {
    BackupMarks m;
    m.label = label_of.at(name);
    m.keep = keep;
    m.annotations["reason"] = "pre-upgrade";
    m.error = error;
    inv.marks[m.label] = m;
  }
};

struct Case {
  std::string name;
  std::vector<std::string> kept_marks;  // marked keep = true
  std::vector<std::string> other_marks; // annotated only (keep = false)
  std::string error_mark;               // unreadable marks object
  std::string kept;                     // names kept by the plan, oldest first
  int cutoff_day;
};

TEST(KeptRetention, Table) {
  const std::int64_t now = kT0 + 7 * kDay + kDay / 2;
  std::vector<Case> cases = {
      {"no marks: the policy alone (one full and its chain)", {}, {}, "", "F4 I5 I6 I7", 4},
      {"a kept full stays with its WAL", {"F0"}, {}, "", "F0 F4 I5 I6 I7", 0},
      {"a kept incremental keeps its ancestors", {"I2"}, {}, "", "F0 I1 I2 F4 I5 I6 I7", 0},
      {"annotated but not kept: deleted", {}, {"I2", "F0"}, "", "F4 I5 I6 I7", 4},
      {"unreadable marks count as kept", {}, {}, "I3", "F0 I1 I2 I3 F4 I5 I6 I7", 0},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    Chain c;
    for (const auto& n : tc.kept_marks) c.mark(n, true);
    for (const auto& n : tc.other_marks) c.mark(n, false);
    if (!tc.error_mark.empty()) c.mark(tc.error_mark, true, "malformed marks");
    RetentionPlan p = plan_retention(c.inv, policy(1), now);
    std::string kept;
    for (const auto& l : labels(p, RetentionAction::Keep)) kept += (kept.empty() ? "" : " ") + c.name_of[l];
    EXPECT_EQ(kept, tc.kept);
    ASSERT_TRUE(p.wal_cutoff_segno);
    EXPECT_EQ(*p.wal_cutoff_segno, 2u + 2u * static_cast<std::uint64_t>(tc.cutoff_day));
    for (const auto& n : tc.kept_marks) EXPECT_TRUE(has_rule(decision(p, c.label_of[n]), "kept"));
  }
}

TEST(KeptRetention, MarkKeepReleaseAndAnnotateUnderTheRetentionLock) {
  VerifyRepo r;
  r.write_manifest_once();
  const std::string l = r.m.label;
  MarkChange keep;
  ASSERT_TRUE(mark_change(keep, l, std::nullopt, {{l, "reason=pre-upgrade"}}));
  EXPECT_EQ(run_mark(*r.repo, keep, 3600, kT0), "backup " + l + ": kept, reason=pre-upgrade\n");
  MarkChange release;
  ASSERT_TRUE(mark_change(release, std::nullopt, l, {}));
  EXPECT_EQ(run_mark(*r.repo, release, 3600, kT0), "backup " + l + ": not kept, reason=pre-upgrade\n");
  MarkChange clear;
  ASSERT_TRUE(mark_change(clear, std::nullopt, std::nullopt, {{l, "reason="}}));
  run_mark(*r.repo, clear, 3600, kT0);
  EXPECT_TRUE(read_marks(*r.repo, l)->empty());
  EXPECT_FALSE(r.repo->storage().head(keys::lock("retention")));  // released

  MarkChange none;
  EXPECT_FALSE(mark_change(none, std::nullopt, std::nullopt, {}));
  MarkChange two;
  EXPECT_THROW_KIND(mark_change(two, l, std::nullopt, {{"other", "a=b"}}), ErrorKind::InvalidInput);
  MarkChange missing{"20990101T000000Z-F", true, {}};
  EXPECT_THROW_KIND(run_mark(*r.repo, missing, 3600, kT0), ErrorKind::NotFound);
  auto held = RepositoryLock::acquire(r.repo->storage(), "retention", {"retention-prune", 3600, kT0});
  EXPECT_THROW_KIND(run_mark(*r.repo, keep, 3600, kT0), ErrorKind::Conflict);
}

}  // namespace
}  // namespace pgvault
