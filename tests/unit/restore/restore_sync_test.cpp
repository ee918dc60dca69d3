// The restore's durability step: one syncfs per filesystem at the commit where syncfs reports write-back
// errors (no fsync per file), an fsync of every restored file otherwise, and a failed final sync fails
// the restore naming the location, before global/pg_control is written.
#include <gtest/gtest.h>

#include "restore/restore_fixture.h"
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

TEST(RestoreSync, CoveredLocationsAreMadeDurableByOneSyncfs) {
  Fixture fx;
  RestoreOptions o = options_of(fx);
  FakeSync fake(true);
  RestoreResult r = run_restore(*fx.repo, o);
  EXPECT_GT(r.files, 3u);
  EXPECT_EQ(FakeSync::fsyncs, 0);        // no file fsynced on its own
  EXPECT_EQ(FakeSync::syncfs_calls, 1);  // data directory and tablespace: one filesystem
  EXPECT_TRUE(exists(o.pgdata + "/global/pg_control"));
}

TEST(RestoreSync, WithoutSyncfsEveryRestoredFileIsFsynced) {
  Fixture fx;
  RestoreOptions o = options_of(fx);
  FakeSync fake(false);
  RestoreResult r = run_restore(*fx.repo, o);
  EXPECT_GT(r.files, 3u);
  EXPECT_EQ(static_cast<std::uint64_t>(FakeSync::fsyncs), r.files);  // each one, none skipped
  EXPECT_EQ(FakeSync::syncfs_calls, 0);
  EXPECT_TRUE(exists(o.pgdata + "/global/pg_control"));
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
  EXPECT_EQ(FakeSync::syncfs_calls, 1);
  EXPECT_FALSE(exists(o.pgdata + "/global/pg_control"));
  EXPECT_TRUE(std::filesystem::is_empty(o.pgdata));  // undone, as any failed restore
}

}  // namespace
}  // namespace pgvault
