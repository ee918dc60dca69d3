// wal-push's detached push worker (push_worker.cpp), the claims that keep it and the calls apart, and
// archive_command's detached mode, on a local repository.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "archive/archive_fixture.h"
#include "common/archive/archive.h"
#include "common/archive/push_worker.h"
#include "common/archive/spool.h"

using namespace pgvault;
using namespace pgvault::archive_test;

namespace {

namespace sfs = std::filesystem;

std::string seg_name(std::uint64_t segno) { return segment_file_name(1, segno, kSeg); }

struct PushWorker : Fixture {
  void SetUp() override {
    Fixture::SetUp();
    repo().initialise();
    config.push.parallel = 3;
    config.push.spool = dir / "push-spool";
    sfs::create_directories(wal_dir + "/archive_status");
  }
  Bytes segment(std::uint64_t s, std::uint8_t salt = 0) {
    return make_segment(42, 1, static_cast<std::uint8_t>(s + salt), kSeg, s);
  }
  // Segments 1..n in pg_wal, each marked .ready.
  void backlog(std::uint64_t n) {
    for (std::uint64_t s = 1; s <= n; ++s) {
      put_file(seg_name(s), segment(s));
      write_file(status(s, ".ready"), {});
    }
  }
  std::string status(std::uint64_t s, const char* suffix) { return wal_dir + "/archive_status/" + seg_name(s) + suffix; }
  std::string path(std::uint64_t s) { return wal_dir + "/" + seg_name(s); }
  std::string spool() { return push_spool_dir(config.push.spool, {repo().describe()}); }
  bool stored(std::uint64_t s) { return repo().storage().head(keys::wal(*WalFileName::parse(seg_name(s)))).has_value(); }
  bool recorded(std::uint64_t s) { return sfs::exists(spool() + "/" + seg_name(s) + ".done"); }
};

TEST_F(PushWorker, ClaimsExcludeEachOtherAndDieWithTheirHolder) {
  const std::string sp = spool();
  write_file(sp + "/" + seg_name(1) + ".inflight", {});  // left by a killed holder: nobody locks it
  {
    PushClaim first(sp, seg_name(1));
    EXPECT_TRUE(first.ours());
    PushClaim second(sp, seg_name(1));
    EXPECT_FALSE(second.ours());
    EXPECT_TRUE(second.busy());
    EXPECT_TRUE(PushClaim(sp, seg_name(2)).ours());  // per file
  }
  EXPECT_FALSE(sfs::exists(sp + "/" + seg_name(1) + ".inflight"));  // released
  EXPECT_TRUE(PushClaim(sp, seg_name(1)).ours());
}

// The worker pushes every .ready file but the caller's, records each, leaves archive_status alone,
// records its pid in push.lock and stops by itself once nothing is left.
TEST_F(PushWorker, DrainsTheBacklogAndRecordsEachFile) {
  backlog(8);
  const auto start = std::chrono::steady_clock::now();
  push_worker(config, path(1));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(stored(1));  // its call pushes it
  EXPECT_FALSE(recorded(1));
  for (std::uint64_t s = 2; s <= 8; ++s) {
    EXPECT_TRUE(stored(s)) << s;
    EXPECT_TRUE(recorded(s)) << s;
    EXPECT_TRUE(sfs::exists(status(s, ".ready"))) << s;  // only PostgreSQL renames it
    EXPECT_FALSE(sfs::exists(status(s, ".done"))) << s;
    EXPECT_FALSE(sfs::exists(spool() + "/" + seg_name(s) + ".inflight")) << s;
  }
  std::ifstream lock(spool() + "/" + kPushLockFile);
  long pid = 0;
  EXPECT_TRUE(lock >> pid);
  EXPECT_EQ(pid, static_cast<long>(::getpid()));

  // PostgreSQL's calls, each followed by its rename of .ready to .done.
  int spawned = 0;
  auto call = [&](std::uint64_t s) {
    PushOutcome outcome = archive_command(config, path(s), [&] { return ++spawned, true; });
    sfs::rename(status(s, ".ready"), status(s, ".done"));
    return outcome;
  };
  EXPECT_EQ(call(1), PushOutcome::Stored);
  EXPECT_EQ(read_file(path(1)), segment(1));
  EXPECT_EQ(call(2), PushOutcome::AlreadyStored);
  EXPECT_FALSE(recorded(2));  // used once
  EXPECT_EQ(spawned, 0);      // every waiting file is recorded: no worker for nothing
  sfs::remove(spool() + "/" + seg_name(5) + ".done");
  EXPECT_EQ(call(3), PushOutcome::AlreadyStored);
  EXPECT_EQ(spawned, 1);  // one is not
}

TEST_F(PushWorker, ARecordIsNotTrustedForAFileThatChanged) {
  backlog(3);
  push_worker(config, path(1));
  ASSERT_TRUE(recorded(3));
  put_file(seg_name(3), segment(3, 7));  // other content under the recorded name
  EXPECT_EQ(kind_of([&] { archive_command(config, path(3), [] { return true; }); }), ErrorKind::Duplicate);
}

TEST_F(PushWorker, AFileThatChangesWhileItIsPushedGetsNoRecord) {
  backlog(2);
  Repository r = repo();
  const PushFn rewriting = [&](const std::string& p) {
    PushResult pushed = push_wal(r, p);
    put_file(seg_name(2), segment(2));  // same bytes, but a new file identity
    return pushed;
  };
  push_ahead_one(rewriting, spool(), path(2));
  EXPECT_TRUE(stored(2));
  EXPECT_FALSE(recorded(2));
}

TEST_F(PushWorker, PassesOverAFileItsCallHasClaimed) {
  backlog(4);
  {
    PushClaim call(spool(), seg_name(3));
    ASSERT_TRUE(call.ours());
    push_worker(config, path(1));
  }
  EXPECT_TRUE(stored(2));
  EXPECT_FALSE(stored(3));
  EXPECT_FALSE(recorded(3));
  EXPECT_TRUE(stored(4));
}

TEST_F(PushWorker, NeverRunsBesideAnotherWorkerOfTheSameSpool) {
  backlog(3);
  SpoolLock other(spool(), kPushLockFile);
  ASSERT_TRUE(other.held());
  push_worker(config, path(1));
  EXPECT_FALSE(stored(2));
  EXPECT_FALSE(stored(3));
}

// A call for the file the worker is pushing waits for the worker and uses its record.
TEST_F(PushWorker, ACallWaitsForTheWorkerPushingItsFile) {
  backlog(2);
  std::atomic<bool> claimed{false};
  std::thread worker([&] {
    PushClaim claim(spool(), seg_name(2));
    claimed = claim.ours();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Repository r = repo();
    push_ahead_one([&](const std::string& p) { return push_wal(r, p); }, spool(), path(2));
  });
  while (!claimed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(archive_command(config, path(2), [] { return true; }), PushOutcome::AlreadyStored);
  worker.join();
}

// A worker that holds a file for too long makes its call fail (PostgreSQL retries), never push beside it.
TEST_F(PushWorker, ACallNeverPushesBesideAWorkerHoldingItsFile) {
  PushClaim worker(spool(), seg_name(2));
  ASSERT_TRUE(worker.ours());
  EXPECT_THROW_KIND(claim_when_free(spool(), seg_name(2), std::chrono::milliseconds(50)), ErrorKind::Transient);
  EXPECT_TRUE(claim_when_free(spool(), seg_name(3), std::chrono::milliseconds(50))->ours());
}

// The call starts the worker only once its own file is durable, and only when other files wait; when
// no worker can be started it looks ahead itself.
TEST_F(PushWorker, SpawnsAfterItsFileIsDurableElseLooksAheadInTheCall) {
  backlog(4);
  int spawned = 0;
  EXPECT_EQ(archive_command(config, path(1),
                            [&] {
                              EXPECT_TRUE(stored(1));
                              ++spawned;
                              return true;
                            }),
            PushOutcome::Stored);
  EXPECT_EQ(spawned, 1);
  EXPECT_FALSE(stored(2));  // left to the worker

  EXPECT_EQ(archive_command(config, path(2), [] { return false; }), PushOutcome::Stored);
  EXPECT_TRUE(recorded(3));  // the fallback pushed ahead
  EXPECT_TRUE(recorded(4));

  for (std::uint64_t s = 1; s <= 4; ++s) sfs::remove(status(s, ".ready"));
  put_file(seg_name(5), segment(5));
  write_file(status(5, ".ready"), {});
  EXPECT_EQ(archive_command(config, path(5), [&] { return ++spawned, true; }), PushOutcome::Stored);
  EXPECT_EQ(spawned, 1);  // nothing else waiting: no worker
}

}  // namespace

namespace {

void age(const std::string& path, long seconds) {
  const auto t = sfs::last_write_time(path) - std::chrono::seconds(seconds);
  sfs::last_write_time(path, t);
}

}  // namespace

// Old records go, at most once per kPruneIntervalSeconds (a call does not read the whole spool each time).
TEST(SpoolPrune, OldRecordsGoAtMostOncePerInterval) {
  pgvault::testing::TempDir dir;
  const std::string spool = dir.path();
  auto touch = [&](const std::string& name) {
    std::ofstream(spool + "/" + name) << "x";
    return spool + "/" + name;
  };
  const std::string old1 = touch("A.done"), fresh = touch("B.done"), lock = touch(kPushLockFile);
  age(old1, 2 * 3600);
  age(lock, 2 * 3600);
  prune_spool_when_due(spool, 3600);
  EXPECT_FALSE(sfs::exists(old1));
  EXPECT_TRUE(sfs::exists(fresh));
  EXPECT_TRUE(sfs::exists(lock));
  ASSERT_TRUE(sfs::exists(spool + "/" + kPrunedMark));

  const std::string old2 = touch("C.done");
  age(old2, 2 * 3600);
  prune_spool_when_due(spool, 3600);  // pruned a moment ago: not again yet
  EXPECT_TRUE(sfs::exists(old2));
  age(spool + "/" + kPrunedMark, kPruneIntervalSeconds + 5);
  prune_spool_when_due(spool, 3600);
  EXPECT_FALSE(sfs::exists(old2));
  EXPECT_TRUE(sfs::exists(spool + "/" + kPrunedMark));  // the mark itself is never pruned
  age(spool + "/" + kPrunedMark, 48 * 3600);
  prune_spool(spool, 3600);
  EXPECT_TRUE(sfs::exists(spool + "/" + kPrunedMark));
}
