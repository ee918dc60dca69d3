// wal-push into several repositories (archive/multi_push.h): the fan-out, the owed queue and its
// bounds, and the catch-up, on local repositories with injected storage faults.
#include "common/archive/multi_push.h"
#include "common/archive/spool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "archive/multi_push_fixture.h"
#include "common/base/errors.h"
#include "common/repo/owed.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

using namespace pgvault;
using namespace pgvault::archive_test;
using pgvault::testing::expect_error;

TEST_F(MultiFixture, StoresInEveryRepository) {
  std::string p = push_seg(1);
  EXPECT_EQ(push_everywhere(targets(), p).outcome, PushOutcome::Stored);
  EXPECT_EQ(fetched(repo_path, seg_name(1)), read_file(p));
  EXPECT_EQ(fetched(cloud_path, seg_name(1)), read_file(p));
  EXPECT_TRUE(owed().empty());
}

TEST_F(MultiFixture, ALaggingRepositoryOwesTheFile) {
  cloud_down = true;
  std::set<std::string> failed;
  push_everywhere(targets(), push_seg(1), &failed);
  push_everywhere(targets(), push_seg(2), &failed);
  EXPECT_EQ(failed, (std::set<std::string>{"cloud"}));
  EXPECT_EQ(owed(), (std::vector<std::string>{seg_name(1), seg_name(2)}));
  EXPECT_FALSE(std::filesystem::exists(cloud_path + "/wal/0000000100000000/" + seg_name(1)));
}

TEST_F(MultiFixture, ARequiredRepositoryFailsTheCall) {
  cloud().required = true;
  cloud_down = true;
  EXPECT_THROW_KIND(push_everywhere(targets(), push_seg(1)), ErrorKind::Transient);
  EXPECT_TRUE(owed().empty());
}

TEST_F(MultiFixture, NeverASuccessWhenNothingStoredIt) {
  config.repositories[0].repository.required = false;
  std::vector<PushTarget> t = targets();
  t[0].open = [p = repo_path] {
    auto s = std::make_unique<FaultStorage>(make_fs_storage(p));
    s->fail = [](const std::string&, const std::string&) { throw Error(ErrorKind::Transient, "primary down"); };
    return s;
  };
  cloud_down = true;
  EXPECT_THROW_KIND(push_everywhere(t, push_seg(1)), ErrorKind::Transient);
}

TEST_F(MultiFixture, TheSegmentBoundFailsNamingRepositoryAndBound) {
  cloud().max_owed_segments = 1;
  cloud_down = true;
  push_everywhere(targets(), push_seg(1));
  expect_error([&] { push_everywhere(targets(), push_seg(2)); }, ErrorKind::Transient, "max_owed_segments = 1");
  expect_error([&] { push_everywhere(targets(), push_seg(2)); }, ErrorKind::Transient, "repository cloud");
  EXPECT_EQ(owed(), (std::vector<std::string>{seg_name(1)}));
}

TEST_F(MultiFixture, TheAgeBoundFailsNamingRepositoryAndBound) {
  cloud().max_owed_age = "1h";
  cloud_down = true;
  const std::int64_t now = std::time(nullptr);
  push_everywhere(targets(), push_seg(1), nullptr, now - 7200);
  expect_error([&] { push_everywhere(targets(), push_seg(2), nullptr, now); }, ErrorKind::Transient,
               "max_owed_age = 1h");
}

TEST_F(MultiFixture, DifferentContentIsNeverOwed) {
  Repository c(make_fs_storage(cloud_path), config);
  push_wal(c, push_seg(1));
  std::string other = put_file(seg_name(1), make_segment(42, 1, 99, kSeg, 1));
  EXPECT_THROW_KIND(push_everywhere(targets(), other), ErrorKind::Duplicate);
  EXPECT_TRUE(owed().empty());
}

TEST_F(MultiFixture, CatchUpPushesWhatIsOwedFromAnotherRepository) {
  cloud_down = true;
  std::vector<Bytes> content;
  for (int n = 1; n <= 4; ++n) {
    std::string p = push_seg(n);
    content.push_back(read_file(p));
    push_everywhere(targets(), p);
    std::filesystem::remove(p);  // PostgreSQL recycled it: the copy must come from the repository
  }
  ASSERT_EQ(owed().size(), 4u);
  cloud_down = false;
  cloud_queue().clear_retry_after();  // the failed calls' back-off (multi_push_lag_test.cpp)
  // Skipped while the repository is named in `skip` (its push just failed), and nothing started late.
  EXPECT_EQ(catch_up(targets(), {"cloud"}, 2, std::nullopt).pushed, 0u);
  EXPECT_EQ(catch_up(targets(), {}, 2, std::chrono::steady_clock::now() - std::chrono::seconds(1)).pushed, 0u);
  ASSERT_EQ(owed().size(), 4u);
  CatchUpResult r = catch_up(targets(), {}, 2, std::nullopt);
  EXPECT_EQ(r.pushed, 4u);
  EXPECT_EQ(r.owed, 0u);
  EXPECT_TRUE(owed().empty());
  for (int n = 1; n <= 4; ++n) EXPECT_EQ(fetched(cloud_path, seg_name(n)), content[n - 1]) << n;
}

TEST_F(MultiFixture, CatchUpStopsAtAFailingRepositoryAndKeepsTheQueue) {
  cloud_down = true;
  for (int n = 1; n <= 3; ++n) push_everywhere(targets(), push_seg(n));
  cloud_queue().clear_retry_after();
  cloud_puts = 0;
  cloud_calls = 0;
  CatchUpResult r = catch_up(targets(), {}, 1, std::nullopt);
  EXPECT_EQ(r.pushed, 0u);
  EXPECT_EQ(r.owed, 3u);
  EXPECT_EQ(cloud_puts.load(), 0);
  EXPECT_EQ(cloud_calls.load(), 1);  // the first failure ends the run for that repository
  EXPECT_EQ(owed().size(), 3u);
  EXPECT_GT(cloud_queue().retry_after().value_or(0), std::time(nullptr));  // and it backs off again
}

TEST_F(MultiFixture, CatchUpCommandDrainsOrSaysWhatIsStillOwed) {
  cloud_down = true;
  for (int n = 1; n <= 3; ++n) push_everywhere(targets(), push_seg(n));
  catch_up_command(config, "cloud");  // the configured (unfailing) storages
  EXPECT_TRUE(owed().empty());
  OwedQueue(select_repository(config, "cloud")).add(seg_name(9), std::time(nullptr));  // held nowhere
  expect_error([&] { catch_up_command(config, ""); }, ErrorKind::Transient, "cloud: 1");
  EXPECT_THROW_KIND(catch_up_command(config, "nosuch"), ErrorKind::Config);
}

// Pushed directly where it is owed (a target not bounded: the calls skip an owing lagging repository).
TEST_F(MultiFixture, ASuccessfulRetryForgetsTheOwedEntry) {
  cloud_down = true;
  std::string p = push_seg(1);
  push_everywhere(targets(), p);
  ASSERT_EQ(owed().size(), 1u);
  cloud_down = false;
  std::vector<PushTarget> full = targets();
  for (auto& t : full) t.patience = Patience::Full;
  push_everywhere(full, p);
  EXPECT_TRUE(owed().empty());
}

TEST_F(MultiFixture, OwedFileNoOtherRepositoryHoldsStaysOwed) {
  OwedQueue(select_repository(config, "cloud")).add(seg_name(7), std::time(nullptr));
  CatchUpResult r = catch_up(targets(), {}, 2, std::nullopt);
  EXPECT_EQ(r.pushed, 0u);
  EXPECT_EQ(owed(), (std::vector<std::string>{seg_name(7)}));
}

// A configured [push] spool shared by calls for different repositories (wal-push --repo a, then --repo b):
// a record of the push into one must never answer the call for the other.
TEST(PushSpool, AConfiguredFolderKeepsEachRepositorysRecordsApart) {
  TempDir tmp;
  const std::string a = push_spool_dir(tmp.path(), {"fs:/repo-a"});
  const std::string b = push_spool_dir(tmp.path(), {"fs:/repo-b"});
  const std::string both = push_spool_dir(tmp.path(), {"fs:/repo-a", "fs:/repo-b"});
  EXPECT_NE(a, b);
  EXPECT_NE(a, both);
  EXPECT_NE(b, both);
  EXPECT_EQ(a, push_spool_dir(tmp.path(), {"fs:/repo-a"}));
  const std::string wal = tmp.path() + "/000000010000000000000001";
  { std::ofstream(wal) << "0123456789abcdef"; }
  const FileIdentity id = file_identity(wal);
  write_push_record(a, "000000010000000000000001", id, Digest{});
  EXPECT_FALSE(take_push_record(b, "000000010000000000000001", id));
  EXPECT_TRUE(take_push_record(a, "000000010000000000000001", id));
}
