// The worker pools of wal-fetch's prefetch (TaskGroup) and wal-push's look-ahead, on a local repository.
#include <gtest/gtest.h>

#include <filesystem>

#include "archive/archive_fixture.h"
#include "common/archive/archive.h"
#include "common/archive/spool.h"

using namespace pgvault;
using namespace pgvault::archive_test;

namespace {

namespace sfs = std::filesystem;

std::string seg_name(std::uint64_t segno) { return segment_file_name(1, segno, kSeg); }

struct Prefetch : Fixture {
  void SetUp() override {
    Fixture::SetUp();
    config.fetch.spool = dir / "spool";
  }
  Bytes segment(std::uint64_t segno) { return make_segment(42, 1, static_cast<std::uint8_t>(segno), kSeg, segno); }
  void archive(std::uint64_t first, std::uint64_t last) {
    auto r = repo();
    for (std::uint64_t s = first; s <= last; ++s) push_wal(r, put_file(seg_name(s), segment(s)));
  }
  std::string spool() { return prefetch_spool_dir(config.fetch.spool, repo().describe(), 42); }
  std::vector<std::string> spooled() {
    std::vector<std::string> names;
    for (const auto& e : sfs::directory_iterator(spool())) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// More segments than workers: every worker goes on to the next one until the archive ends.
TEST_F(Prefetch, WorkersFetchTheNextSegmentsUntilTheArchiveEnds) {
  archive(1, 10);
  config.fetch.prefetch = 12;
  prefetch_worker(config, kName);
  std::vector<std::string> expected{"prefetch.lock"};
  for (std::uint64_t s = 2; s <= 10; ++s) {
    expected.push_back(seg_name(s));
    expected.push_back(seg_name(s) + ".ready");
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(spooled(), expected);  // nothing of segment 11, no .inflight mark left

  repo().storage().remove(keys::wal(*WalFileName::parse(seg_name(2))));  // only the spool has it now
  int spawned = 0;
  EXPECT_EQ(restore_command(config, seg_name(2), dir / "RECOVERYXLOG", [&] { ++spawned; }), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dir / "RECOVERYXLOG"), segment(2));
  EXPECT_FALSE(sfs::exists(spool() + "/" + seg_name(2)));  // handed over from the spool
  EXPECT_EQ(spawned, 1);
}

TEST_F(Prefetch, AStopRequestEndsTheBatchAndEmptiesTheSpool) {
  archive(1, 5);
  config.fetch.prefetch = 4;
  write_file(spool() + "/" + kPrefetchStopFile, {});
  write_file(spool() + "/" + seg_name(9), as_bytes("left from before"));
  prefetch_worker(config, kName);
  EXPECT_EQ(spooled(), std::vector<std::string>{"prefetch.lock"});
}

// Recovery ends while a worker runs: the call's stop request may land just after the worker looked for
// it. Whoever finds the lock free next (the call asking once more, or the worker once it let go) empties
// the spool and removes the request; nothing is left for the next recovery.
TEST_F(Prefetch, AStopTheWorkerMissedIsTidiedOnceTheLockIsFree) {
  sfs::create_directories(spool());
  write_file(spool() + "/" + seg_name(7), as_bytes("prefetched"));
  auto worker = std::make_unique<SpoolLock>(spool());
  ASSERT_TRUE(worker->held());
  stop_prefetching(spool());  // the worker still holds its lock: only the request is written
  EXPECT_TRUE(sfs::exists(spool() + "/" + kPrefetchStopFile));
  write_file(spool() + "/" + seg_name(8), as_bytes("fetched after finish() looked"));
  tidy_after_stop(spool());  // still held: the worker's own finish() is due to do it
  EXPECT_TRUE(sfs::exists(spool() + "/" + seg_name(8)));
  worker.reset();  // the worker lets go, then looks again
  tidy_after_stop(spool());
  EXPECT_EQ(spooled(), std::vector<std::string>{"prefetch.lock"});
  // Without a stop request (recovery goes on) nothing is touched.
  write_file(spool() + "/" + seg_name(9), as_bytes("prefetched"));
  tidy_after_stop(spool());
  EXPECT_TRUE(sfs::exists(spool() + "/" + seg_name(9)));
}

TEST_F(Prefetch, LookAheadPushesTheReadyFilesAndTheirCallsSucceedAtOnce) {
  repo().initialise();
  config.push.parallel = 3;
  config.push.spool = dir / "push-spool";
  sfs::create_directories(wal_dir + "/archive_status");
  const std::uint64_t ready = 4 * 3 + 2;  // more than one call takes: at most 4 * parallel ahead
  for (std::uint64_t s = 1; s <= ready; ++s) {
    put_file(seg_name(s), make_segment(42, 1, static_cast<std::uint8_t>(s), kSeg, s));
    write_file(wal_dir + "/archive_status/" + seg_name(s) + ".ready", {});
  }
  EXPECT_EQ(archive_command(config, wal_dir + "/" + seg_name(1)), PushOutcome::Stored);
  auto r = repo();
  auto stored = [&](std::uint64_t s) { return r.storage().head(keys::wal(*WalFileName::parse(seg_name(s)))).has_value(); };
  // A queue, not one batch of parallel - 1: the threads take the next file as they finish one.
  for (std::uint64_t s = 1; s <= 4; ++s) EXPECT_TRUE(stored(s)) << s;
  EXPECT_FALSE(stored(ready));  // beyond 4 * parallel: left to later calls
  const std::string records = push_spool_dir(config.push.spool, {r.describe()});
  EXPECT_TRUE(sfs::exists(records + "/" + seg_name(2) + ".done"));
  EXPECT_EQ(archive_command(config, wal_dir + "/" + seg_name(2)), PushOutcome::AlreadyStored);
  EXPECT_FALSE(sfs::exists(records + "/" + seg_name(2) + ".done"));  // used once
}

}  // namespace
