// The recovery target resolver (common/restore/target_resolve.h) on WAL indexes built in memory: which
// backup each target kind picks, the refusals, the fallback without an index, timeline switches and
// records left open at a segment's end.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/base/errors.h"
#include "common/restore/target_resolve.h"
#include "restore/restore_fixture.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::uint32_t kSeg = 16u << 20;
constexpr double kT0 = 1'800'000'000;  // unix seconds

std::string seg_name(std::uint32_t tli, std::uint64_t segno) { return segment_file_name(tli, segno, kSeg); }
std::uint64_t lsn(std::uint64_t segno, std::uint64_t off) { return segno * kSeg + off; }

WalEvent commit(std::uint64_t at, std::uint32_t xid, double unix_time) {
  return {WalEventKind::Commit, at, at + 0x40, unix_to_pg_timestamp(unix_time), xid, ""};
}
WalEvent restore_point(std::uint64_t at, const std::string& name, double unix_time = kT0) {
  return {WalEventKind::RestorePoint, at, at + 0x48, unix_to_pg_timestamp(unix_time), 0, name};
}

// The index wal-push would write for a segment holding `events`.
WalIndex make_index(std::uint32_t tli, std::uint64_t segno, const std::vector<WalEvent>& events) {
  WalIndex idx;
  idx.segment = seg_name(tli, segno);
  idx.start_lsn = segno * kSeg;
  idx.records = events.size() + 3;
  std::set<std::uint32_t> xids;
  for (const auto& e : events) {
    if (e.kind == WalEventKind::RestorePoint) {
      idx.restore_points.push_back(e);
      continue;
    }
    idx.min_time = std::min(idx.min_time.value_or(e.time), e.time);
    idx.max_time = std::max(idx.max_time.value_or(e.time), e.time);
    xids.insert(e.xid);
  }
  for (std::uint32_t x : xids) {
    if (!idx.xid_runs.empty() && idx.xid_runs.back().second + 1 == x) idx.xid_runs.back().second = x;
    else idx.xid_runs.emplace_back(x, x);
  }
  return idx;
}

// Indexes and segment contents in memory; records what was read.
struct FakeSource : WalIndexSource {
  std::map<std::string, WalIndex> indexes;
  std::set<std::string> corrupt;
  std::map<std::string, std::vector<WalEvent>> segment_events;  // events of the records starting in it
  std::vector<std::string> index_reads;
  std::vector<std::vector<std::string>> segment_reads;

  std::optional<WalIndex> index(const WalObject& s) override {
    index_reads.push_back(s.name);
    if (corrupt.count(s.name)) throw Error(ErrorKind::Corruption, "walindex/" + s.name + ": bad digest");
    auto it = indexes.find(s.name);
    return it == indexes.end() ? std::nullopt : std::optional<WalIndex>(it->second);
  }
  std::vector<WalEvent> events(const std::vector<const WalObject*>& segs, std::uint32_t) override {
    std::vector<std::string> names;
    for (auto* s : segs) names.push_back(s->name);
    segment_reads.push_back(names);
    return segment_events[segs.front()->name];
  }
  // A segment with its events both in its index and in its content.
  void put(std::uint32_t tli, std::uint64_t segno, const std::vector<WalEvent>& events) {
    indexes[seg_name(tli, segno)] = make_index(tli, segno, events);
    segment_events[seg_name(tli, segno)] = events;
  }
};

BackupManifest backup(const std::string& label, std::uint64_t start_seg, std::uint64_t stop_seg) {
  BackupManifest m;
  m.label = label;
  m.timeline = 1;
  m.start_lsn = lsn(start_seg, 0x28);
  m.stop_lsn = lsn(stop_seg, 0x100);
  return m;
}

// Backups A (segments 2..3) and B (6..7), WAL segments 1..10 on timeline 1: restore point t1 and xids
// 700..709 (times T0+40..49) in segment 4, between the backups; restore point t2 and xids 800..809
// (times T0+80..89) in segment 8, after B; in every other segment s one commit, of xid 100+s at T0+10*s.
struct Archive {
  Inventory inv;
  FakeSource src;
  BackupManifest a = backup("A", 2, 3), b = backup("B", 6, 7);
  std::vector<ChainStep> chain{ChainStep{1, 0, UINT64_MAX, 0, UINT64_MAX}};

  Archive() {
    std::vector<ObjectInfo> objs;
    for (std::uint64_t s = 1; s <= 10; ++s) objs.push_back({keys::wal(*WalFileName::parse(seg_name(1, s))), 100, 0});
    add_wal_listing(inv, objs);
    for (std::uint64_t s = 1; s <= 10; ++s) {
      if (s == 4 || s == 8) continue;
      src.put(1, s, {commit(lsn(s, 0x80), 100 + static_cast<std::uint32_t>(s), kT0 + 10 * static_cast<double>(s))});
    }
    std::vector<WalEvent> four{restore_point(lsn(4, 0x100), "t1")}, eight{restore_point(lsn(8, 0x100), "t2")};
    for (std::uint32_t i = 0; i < 10; ++i) {
      four.push_back(commit(lsn(4, 0x200 + i * 0x100), 700 + i, kT0 + 40 + i));
      eight.push_back(commit(lsn(8, 0x200 + i * 0x100), 800 + i, kT0 + 80 + i));
    }
    src.put(1, 4, four);
    src.put(1, 8, eight);
  }
  TargetResolver resolver(TargetKind kind, const std::string& value, double time = 0, bool exclusive = false) {
    return TargetResolver(inv, src, RecoveryTarget{kind, value, 0, time}, exclusive);
  }
};

using Kind = TargetVerdict::Kind;

TEST(TargetResolveTest, NameBetweenBackupsPicksTheOlderOne) {
  Archive ar;
  TargetResolver r = ar.resolver(TargetKind::Name, "t1");
  TargetVerdict vb = r.judge(ar.b, ar.chain);
  EXPECT_EQ(vb.kind, Kind::Absent) << vb.why;  // B replays from segment 6: t1 is behind it
  TargetVerdict va = r.judge(ar.a, ar.chain);
  ASSERT_EQ(va.kind, Kind::Serves) << va.why;
  EXPECT_EQ(va.target.segment, seg_name(1, 4));
  EXPECT_EQ(va.target.lsn, lsn(4, 0x100));
  EXPECT_EQ(va.end, lsn(4, 0x100 + 0x48) - 1);
  EXPECT_NE(va.target.how.find("restore point \"t1\""), std::string::npos) << va.target.how;
  // Every index read once across both candidates; no segment read (the index knows restore points).
  std::set<std::string> unique(ar.src.index_reads.begin(), ar.src.index_reads.end());
  EXPECT_EQ(unique.size(), ar.src.index_reads.size());
  EXPECT_TRUE(ar.src.segment_reads.empty());
}

TEST(TargetResolveTest, NameInsideTheNewerBackupPassesItOver) {
  Archive ar;
  ar.src.put(1, 6, {restore_point(lsn(6, 0x200), "t1"), commit(lsn(6, 0x300), 106, kT0 + 60)});
  TargetResolver r = ar.resolver(TargetKind::Name, "t1");
  TargetVerdict vb = r.judge(ar.b, ar.chain);
  ASSERT_EQ(vb.kind, Kind::Before);
  EXPECT_NE(vb.why.find("backup B ends at 0/7000100, after the target's restore point \"t1\" at 0/6000200"),
            std::string::npos) << vb.why;
  // A replays from segment 2 and stops at the first t1, in segment 4.
  TargetVerdict va = r.judge(ar.a, ar.chain);
  ASSERT_EQ(va.kind, Kind::Serves);
  EXPECT_EQ(va.target.lsn, lsn(4, 0x100));
}

TEST(TargetResolveTest, TimeBetweenBackupsPicksTheOlderOne) {
  Archive ar;
  TargetResolver r = ar.resolver(TargetKind::Time, "T0+44.5", kT0 + 44.5);
  // B's replay stops before the commit at 0/6000080 (T0+60), before B's end: B is passed over.
  TargetVerdict vb = r.judge(ar.b, ar.chain);
  ASSERT_EQ(vb.kind, Kind::Before) << vb.why;
  EXPECT_EQ(vb.target.lsn, lsn(6, 0x80));  // read from the segment: B's replay starts in it
  // A's stops before the commit of xid 705 in segment 4.
  TargetVerdict va = r.judge(ar.a, ar.chain);
  ASSERT_EQ(va.kind, Kind::Serves) << va.why;
  EXPECT_EQ(va.target.segment, seg_name(1, 4));
  EXPECT_FALSE(va.target.lsn);       // the index says which segment; no need to read it
  EXPECT_EQ(va.end, lsn(5, 0) - 1);  // the WAL check ends with that segment
  EXPECT_EQ(ar.src.segment_reads.size(), 1u);
}

TEST(TargetResolveTest, TimeAtTheStopSegmentComparesExactLsns) {
  Archive ar;
  ar.src.put(1, 7, {commit(lsn(7, 0x80), 107, kT0 + 70), commit(lsn(7, 0x200), 108, kT0 + 75)});
  TargetResolver r = ar.resolver(TargetKind::Time, "T0+72", kT0 + 72);
  TargetVerdict vb = r.judge(ar.b, ar.chain);
  ASSERT_EQ(vb.kind, Kind::Serves) << vb.why;  // the commit after the time is past B's stop LSN (0x100)
  EXPECT_EQ(vb.target.lsn, lsn(7, 0x200));
  ASSERT_EQ(ar.src.segment_reads.size(), 1u);  // only B's stop segment: its index matches
  EXPECT_EQ(ar.src.segment_reads[0].front(), seg_name(1, 7));
  TargetResolver before = ar.resolver(TargetKind::Time, "T0+65", kT0 + 65);
  EXPECT_EQ(before.judge(ar.b, ar.chain).kind, Kind::Before);  // the commit at 0/7000080
  // --target-exclusive stops at a commit AT the time too.
  TargetResolver ex = ar.resolver(TargetKind::Time, "T0+75", kT0 + 75, true);
  EXPECT_EQ(ex.judge(ar.b, ar.chain).target.lsn, lsn(7, 0x200));
  TargetResolver in = ar.resolver(TargetKind::Time, "T0+75", kT0 + 75, false);
  EXPECT_EQ(in.judge(ar.b, ar.chain).target.segment, seg_name(1, 8));
}

TEST(TargetResolveTest, XidBetweenBackupsPicksTheOlderOne) {
  Archive ar;
  TargetResolver r = ar.resolver(TargetKind::Xid, "705");
  EXPECT_EQ(r.judge(ar.b, ar.chain).kind, Kind::Absent);
  TargetVerdict va = r.judge(ar.a, ar.chain);
  ASSERT_EQ(va.kind, Kind::Serves);
  EXPECT_EQ(va.target.segment, seg_name(1, 4));
  // An xid committed in B's start segment before B's start is not seen by B's replay.
  ar.src.put(1, 6, {commit(lsn(6, 0x10), 555, kT0 + 60)});
  TargetResolver r2 = ar.resolver(TargetKind::Xid, "555");
  EXPECT_EQ(r2.judge(ar.b, ar.chain).kind, Kind::Absent);
  TargetVerdict va2 = r2.judge(ar.a, ar.chain);
  EXPECT_EQ(va2.kind, Kind::Serves);
  EXPECT_EQ(va2.target.segment, seg_name(1, 6));
}

TEST(TargetResolveTest, RefusalsNameWhatTheArchiveHolds) {
  Archive ar;
  TargetResolver name = ar.resolver(TargetKind::Name, "nope");
  EXPECT_EQ(name.judge(ar.b, ar.chain).kind, Kind::Absent);
  EXPECT_EQ(name.judge(ar.a, ar.chain).kind, Kind::Absent);
  EXPECT_EQ(name.absent_message(), "restore point \"nope\" was never created in the archived WAL (" + seg_name(1, 2) +
                                       ".." + seg_name(1, 10) + "); the restore points there are \"t2\", \"t1\"");
  TargetResolver late = ar.resolver(TargetKind::Time, "2027-01-15 08:00:00+00", kT0 + 1000);
  EXPECT_EQ(late.judge(ar.b, ar.chain).kind, Kind::Absent);
  EXPECT_EQ(late.judge(ar.a, ar.chain).kind, Kind::Absent);
  EXPECT_NE(late.absent_message().find("no transaction commits or aborts after 2027-01-15 08:00:00+00"),
            std::string::npos);
  EXPECT_NE(late.absent_message().find("the newest archived commit or abort is at " +
                                       format_pg_timestamp(unix_to_pg_timestamp(kT0 + 100))),
            std::string::npos) << late.absent_message();
  TargetResolver xid = ar.resolver(TargetKind::Xid, "99999");
  EXPECT_EQ(xid.judge(ar.a, ar.chain).kind, Kind::Absent);
  EXPECT_NE(xid.absent_message().find("transaction 99999 never commits or aborts"), std::string::npos);
  EXPECT_NE(xid.absent_message().find("the xids that do range from 102 to 809"), std::string::npos)
      << xid.absent_message();
  // A time whose first commit after it (at 0/3000080) lies before the oldest backup's end.
  TargetResolver early = ar.resolver(TargetKind::Time, "T0+25", kT0 + 25);
  TargetVerdict v = early.judge(ar.a, ar.chain);
  EXPECT_EQ(v.kind, Kind::Before);
  EXPECT_NE(v.why.find("backup A ends at 0/3000100"), std::string::npos) << v.why;
}

TEST(TargetResolveTest, MissingOrInvalidIndexLeavesTheTargetUnresolved) {
  Archive ar;
  ar.src.indexes.erase(seg_name(1, 3));
  TargetResolver r = ar.resolver(TargetKind::Name, "t1");
  TargetVerdict v = r.judge(ar.a, ar.chain);
  ASSERT_EQ(v.kind, Kind::Unresolved);
  EXPECT_EQ(v.why, "segment " + seg_name(1, 3) +
                       " has no WAL index (archived by an older pgvault?): the target is not resolved in advance");
  ar.src.corrupt.insert(seg_name(1, 2));
  TargetResolver r2 = ar.resolver(TargetKind::Name, "t1");
  TargetVerdict v2 = r2.judge(ar.a, ar.chain);
  ASSERT_EQ(v2.kind, Kind::Unresolved);
  EXPECT_NE(v2.why.find("the WAL index of segment " + seg_name(1, 2) + " is invalid (walindex/"), std::string::npos)
      << v2.why;
  // A segment missing from the archive: the WAL check names it later, as before.
  Archive gap;
  gap.inv.wal[1].segments.erase(gap.inv.wal[1].segments.begin() + 3);  // segment 4
  TargetResolver r3 = gap.resolver(TargetKind::Name, "t1");
  EXPECT_EQ(r3.judge(gap.a, gap.chain).kind, Kind::Unresolved);
  // Past the target, a missing index does not matter: the walk stops at the target.
  Archive late;
  late.src.indexes.erase(seg_name(1, 9));
  TargetResolver r4 = late.resolver(TargetKind::Name, "t2");
  EXPECT_EQ(r4.judge(late.b, late.chain).kind, Kind::Serves);
}

TEST(TargetResolveTest, FollowsTheTimelineChain) {
  Archive ar;
  // Timeline 2 branches off in segment 8 at 0/8000180: timeline 1's segment 8 holds t2 (at 0/8000100, on
  // both histories) and, after the switch, t4, which timeline 2 never saw; timeline 2's copy of segment 8
  // holds t2 and then t5.
  std::vector<ObjectInfo> objs;
  for (std::uint64_t s = 8; s <= 9; ++s) objs.push_back({keys::wal(*WalFileName::parse(seg_name(2, s))), 100, 0});
  add_wal_listing(ar.inv, objs);
  ar.src.put(1, 8, {restore_point(lsn(8, 0x100), "t2"), restore_point(lsn(8, 0x400), "t4")});
  ar.src.put(2, 8, {restore_point(lsn(8, 0x100), "t2"), restore_point(lsn(8, 0x400), "t5")});
  ar.src.put(2, 9, {});
  std::vector<ChainStep> to2{ChainStep{1, 0, 7, 0, lsn(8, 0x180)}, ChainStep{2, 8, UINT64_MAX, lsn(8, 0x180), UINT64_MAX}};
  TargetResolver t4 = ar.resolver(TargetKind::Name, "t4");
  EXPECT_EQ(t4.judge(ar.b, to2).kind, Kind::Absent);
  EXPECT_EQ(t4.judge(ar.b, ar.chain).kind, Kind::Serves);  // on timeline 1 it is there
  TargetResolver t5 = ar.resolver(TargetKind::Name, "t5");
  TargetVerdict v5 = t5.judge(ar.b, to2);
  ASSERT_EQ(v5.kind, Kind::Serves);
  EXPECT_EQ(v5.target.segment, seg_name(2, 8));
  TargetResolver t2 = ar.resolver(TargetKind::Name, "t2");
  EXPECT_EQ(t2.judge(ar.b, to2).target.segment, seg_name(2, 8));
  EXPECT_EQ(t2.judge(ar.b, to2).target.lsn, lsn(8, 0x100));
}

TEST(TargetResolveTest, ReadsARecordLeftOpenAtASegmentsEnd) {
  Archive ar;
  // Segment 5's last record starts at 0/5FFFF00 and ends in segment 6: it is restore point t3.
  WalIndex five = make_index(1, 5, {commit(lsn(5, 0x80), 105, kT0 + 50)});
  five.open_record_lsn = lsn(5, kSeg - 0x100);
  five.open_record_may_be_event = true;
  ar.src.indexes[seg_name(1, 5)] = five;
  ar.src.segment_events[seg_name(1, 5)] = {commit(lsn(5, 0x80), 105, kT0 + 50),
                                           restore_point(lsn(5, kSeg - 0x100), "t3")};
  TargetResolver r = ar.resolver(TargetKind::Name, "t3");
  TargetVerdict v = r.judge(ar.a, ar.chain);
  ASSERT_EQ(v.kind, Kind::Serves) << v.why;
  EXPECT_EQ(v.target.lsn, lsn(5, kSeg - 0x100));
  EXPECT_EQ(v.end, lsn(5, kSeg - 0x100 + 0x48) - 1);  // in segment 6: the WAL check includes it
  ASSERT_EQ(ar.src.segment_reads.size(), 1u);
  EXPECT_EQ(ar.src.segment_reads[0], (std::vector<std::string>{seg_name(1, 5), seg_name(1, 6)}));
  // An open record that cannot be an event is not read.
  five.open_record_may_be_event = false;
  ar.src.indexes[seg_name(1, 5)] = five;
  TargetResolver r2 = ar.resolver(TargetKind::Name, "t3");
  EXPECT_EQ(r2.judge(ar.a, ar.chain).kind, Kind::Absent);
  EXPECT_EQ(ar.src.segment_reads.size(), 1u);
}

// plan_restore with the resolver: the older backup for a restore point between the two, the WAL checked
// only to the target, the refusals, and the plan as before when an index is missing.
TEST(TargetResolveTest, PlanPicksTheOlderBackupAndChecksWalOnlyToTheTarget) {
  restore_test::Fixture fx;  // backup F: 0/2000028..0/3000100; WAL segments 1..6
  fx.commit();
  BackupManifest later = fx.m;
  later.label = "20260102T000000Z-F";
  later.start_lsn = lsn(5, 0x28);
  later.stop_lsn = lsn(5, 0x200);
  later.stop_time = "2026-01-02T00:01:00Z";
  write_manifest(*fx.repo, later);
  Inventory inv = load_inventory(*fx.repo);
  FakeSource src;
  for (std::uint64_t s = 1; s <= 6; ++s) src.put(1, s, {commit(lsn(s, 0x300), 100, kT0)});
  src.put(1, 4, {restore_point(lsn(4, 0x100), "t1")});
  RestoreOptions o = fx.options();
  o.target = {TargetKind::Name, "t1", 0, 0};
  RestorePlan p = plan_restore(*fx.repo, inv, o, src);
  EXPECT_EQ(p.backup.label, fx.m.label);
  EXPECT_EQ(p.wal.last_segno, 4u);  // not to the end of the timeline (6)
  ASSERT_TRUE(p.resolved && p.resolved->resolved);
  EXPECT_EQ(p.resolved->lsn, lsn(4, 0x100));
  EXPECT_NE(p.why.find("passed over: the archived WAL from backup " + later.label), std::string::npos) << p.why;
  // Even when segments after the target are missing.
  fx.mem->objects.erase(restore_test::seg_key(1, 6));
  EXPECT_EQ(plan_restore(*fx.repo, load_inventory(*fx.repo), o, src).backup.label, fx.m.label);

  o.target = {TargetKind::Name, "nope", 0, 0};
  try {
    plan_restore(*fx.repo, inv, o, src);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("restore point \"nope\" was never created in the archived WAL"),
              std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the restore points there are \"t1\""), std::string::npos) << e.what();
  }
  o.target = {TargetKind::Name, "t1", 0, 0};
  o.backup = later.label;
  EXPECT_THROW_KIND(plan_restore(*fx.repo, inv, o, src), ErrorKind::NotFound);
  o.backup.clear();

  // Without the index of a segment on the way: as before (the newest backup, WAL to the end).
  src.indexes.erase(restore_test::seg_name(1, 5));
  p = plan_restore(*fx.repo, inv, o, src);
  EXPECT_EQ(p.backup.label, later.label);
  EXPECT_EQ(p.wal.last_segno, 6u);
  ASSERT_TRUE(p.resolved);
  EXPECT_FALSE(p.resolved->resolved);
  EXPECT_NE(p.resolved->how.find("has no WAL index"), std::string::npos);
}

}  // namespace
}  // namespace pgvault
