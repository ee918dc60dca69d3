// The restore's durability step: one syncfs per filesystem at the commit where syncfs reports write-back
// errors (no fsync per file), an fsync of every restored file otherwise, and a failed final sync fails
// the restore naming the location, before global/pg_control is written.
#include <gtest/gtest.h>

#include <tuple>
#include <utility>
#include <vector>

#include "restore/restore_fixture.h"
#include "support/page_cache.h"
#include "support/sync_fakes.h"

namespace pgvault {
namespace {

using namespace restore_test;
using testing::FakeSync;

RestoreOptions options_of(Fixture& fx) {
  fx.commit();
  RestoreOptions o = fx.options();
  o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  return o;
}

// A restore of the fixture's backup with syncfs reporting errors or not: {restored files, file fsyncs,
// syncfs calls}; pg_control must be in place.
std::tuple<std::uint64_t, int, int> restore_counting(bool syncfs_reports_errors) {
  Fixture fx;
  RestoreOptions o = options_of(fx);
  FakeSync fake(syncfs_reports_errors);
  RestoreResult r = run_restore(*fx.repo, o);
  EXPECT_TRUE(exists(o.pgdata + "/global/pg_control"));
  EXPECT_GT(r.files, 3u);
  return {r.files, FakeSync::fsyncs.load(), FakeSync::syncfs_calls.load()};
}

TEST(RestoreSync, CoveredLocationsAreMadeDurableByOneSyncfs) {
  auto [files, fsyncs, syncfs_calls] = restore_counting(true);
  EXPECT_EQ(fsyncs, 0);        // no file fsynced on its own
  EXPECT_EQ(syncfs_calls, 1);  // data directory and tablespace: one filesystem
}

TEST(RestoreSync, WithoutSyncfsEveryRestoredFileIsFsynced) {
  auto [files, fsyncs, syncfs_calls] = restore_counting(false);
  EXPECT_EQ(static_cast<std::uint64_t>(fsyncs), files);  // each one, none skipped
  EXPECT_EQ(syncfs_calls, 0);
}

// A large file (16 MiB or more) is written past the page cache where the filesystem takes O_DIRECT:
// none of it is left cached but its tail under one block, no write-back is started while it is written
// (only the final one of every file of 1 MiB or more, which finds nothing to do), and syncfs still makes
// it all durable. On a filesystem without O_DIRECT its write-back starts 16 MiB at a time instead.
TEST(RestoreSync, ALargeFileIsWrittenPastThePageCache) {
  Fixture fx;
  const std::string big((40u << 20) + 1, 'w');
  fx.add_bundle(2, {{"base/5/big", big}});
  RestoreOptions o = options_of(fx);
  FakeSync fake(true);
  run_restore(*fx.repo, o);
  constexpr std::uint64_t kMiB = 1u << 20;
  using Calls = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  if (testing::takes_direct_io(fx.tmp.path())) {
    EXPECT_LE(testing::resident_pages(o.pgdata + "/base/5/big"), 1u);
    EXPECT_EQ(FakeSync::writebacks, (Calls{{0, 0}}));
  } else {
    EXPECT_EQ(FakeSync::writebacks, (Calls{{0, 16 * kMiB}, {16 * kMiB, 16 * kMiB}, {0, 0}}));
  }
  EXPECT_EQ(FakeSync::syncfs_calls.load(), 1);
  EXPECT_TRUE(slurp(o.pgdata + "/base/5/big") == big);
}

TEST(RestoreSync, AWriteBackErrorAtTheFinalSyncFailsBeforePgControl) {
  Fixture fx;
  RestoreOptions o = options_of(fx);
  std::filesystem::create_directories(o.pgdata);
  FakeSync fake(true);
  FakeSync::syncfs_errno = EIO;
  try {
    run_restore(*fx.repo, o);
    FAIL() << "the restore must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    std::string msg = e.what();
    EXPECT_NE(msg.find("syncfs of the filesystem holding " + o.pgdata), std::string::npos) << msg;
    EXPECT_NE(msg.find(fx.tmp / "ts-new"), std::string::npos) << msg;
  }
  EXPECT_EQ(FakeSync::syncfs_calls.load(), 1);
  EXPECT_FALSE(exists(o.pgdata + "/global/pg_control"));
  EXPECT_TRUE(std::filesystem::is_empty(o.pgdata));  // undone, as any failed restore
}

}  // namespace
}  // namespace pgvault
