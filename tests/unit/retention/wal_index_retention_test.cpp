// retention-prune deletes the WAL index (repo/wal_index.h) of every segment it deletes, and the indexes
// below the WAL cutoff whose segment is already gone; indexes of kept segments stay.
#include <gtest/gtest.h>

#include "common/repo/wal_index.h"
#include "common/retention/retention.h"
#include "retention/retention_fixtures.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using namespace retention_fixtures;

struct IndexedRepo {
  testing::MemoryStorage* mem = nullptr;
  std::unique_ptr<Repository> repo;
  IndexedRepo() {
    auto m = std::make_unique<testing::MemoryStorage>();
    mem = m.get();
    Config c;
    c.repository.type = "memory";
    repo = std::make_unique<Repository>(std::move(m), c);
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
  }
  WalFileName name(std::uint64_t segno) { return *WalFileName::parse(seg_name(1, segno)); }
  void index(std::uint64_t segno) {
    WalSegmentSummary s;
    s.start_lsn = lsn_of(segno);
    write_wal_index(*repo, name(segno), make_wal_index(name(segno), s));
  }
  bool has_index(std::uint64_t segno) { return mem->objects.count(keys::wal_index(name(segno))) != 0; }
};

TEST(WalIndexRetention, IndexesGoWithTheirSegmentsAndOrphansBelowTheCutoffToo) {
  IndexedRepo r;
  for (std::uint64_t s = 1; s <= 12; ++s) {
    if (s != 3) r.repo->put_bytes(seg_key(1, s), as_bytes("wal"));  // 3: an orphan index
    r.index(s);
  }
  r.index(20);  // an index whose segment no listing showed yet (a push between its two writes)
  for (const auto& m : {F(0, 2), F(1, 6), F(2, 10)}) {
    r.repo->put_bytes(keys::backup_bundle(m.label, 0), as_bytes("bundle0"));
    write_manifest(*r.repo, m);
  }
  RetentionPlan p = plan_retention(load_inventory(*r.repo), policy(2), kT0 + 3 * kDay, scan_retention_extras(*r.repo));
  ASSERT_EQ(p.wal_cutoff_segno, std::optional<std::uint64_t>(6));
  execute_retention(*r.repo, p);
  for (std::uint64_t s = 1; s <= 5; ++s) EXPECT_FALSE(r.has_index(s)) << s;
  for (std::uint64_t s : {6u, 7u, 12u, 20u}) EXPECT_TRUE(r.has_index(s)) << s;
  EXPECT_TRUE(read_wal_index(*r.repo, r.name(6)));
}

}  // namespace
}  // namespace pgvault
