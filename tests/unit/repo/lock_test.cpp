// The repository lock (common/repo/lock.h): one holder, stale locks taken over, the heartbeat.
#include "common/repo/lock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::int64_t kT0 = 1'800'000'000;  // 2027-01-15

// On a store that checks create-if-absent later (S3 without conditional writes), acquire() with
// check_create_later takes the lock (and reads it back) at once; the check runs at the first check() or
// refresh, and refuses another writer's object. A refresh runs it before rewriting the record, which
// changes what the check compares, so a check() after a refresh still passes.
TEST(RepositoryLockTest, ACreateCheckLeftForLaterRunsAtTheFirstCheckOrRefresh) {
  const LockOptions o{.tool = "base-push", .stale_after = 3600, .now = kT0, .check_create_later = true};
  {
    testing::CheckedLaterStorage st;
    auto lock = RepositoryLock::acquire(st, "base-push", o);
    EXPECT_TRUE(st.checked.empty());
    lock.check();
    EXPECT_EQ(st.checked, std::vector<std::string>{"locks/base-push"});
  }
  {
    testing::CheckedLaterStorage st;
    st.refuse = "locks/base-push";
    auto lock = RepositoryLock::acquire(st, "base-push", o);
    EXPECT_THROW_KIND(lock.check(), ErrorKind::Duplicate);
  }
  {
    // Gone by the check (another base-push that also believed it won the create released the key): not
    // ours, a Conflict (base-push exits 3), not a Transient error.
    testing::CheckedLaterStorage st;
    auto lock = RepositoryLock::acquire(st, "base-push", o);
    st.objects.erase("locks/base-push");
    EXPECT_THROW_KIND(lock.check(), ErrorKind::Conflict);
  }
  {
    testing::CheckedLaterStorage st;
    auto lock = RepositoryLock::acquire(st, "base-push", o);
    lock.refresh(kT0 + 1200);
    EXPECT_EQ(st.checked, std::vector<std::string>{"locks/base-push"});
    lock.check();
  }
}

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

// A time that is not an integer is not read as one: get<>() truncated 4102444800.5 (2100) to a time in
// the future, so the lock never grew old and blocked every run until deleted by hand. Such a record is
// unreadable, and its age is the object's (MemoryStorage: mtime 0, stale).
TEST(RepositoryLockTest, ANumberThatIsNotAnIntegerMakesTheRecordUnreadable) {
  for (const char* bad : {R"("time": 4102444800.5)", R"("time": 1e300)", R"("pid": 12.5, "time": 4102444800)"}) {
    SCOPED_TRACE(bad);
    testing::MemoryStorage st;
    write_all(st, "locks/retention", as_bytes(std::string(R"({"tool": "retention-prune", "host": "h", )") + bad +
                                              R"(, "token": "x"})"));
    auto lock = RepositoryLock::acquire(st, "retention", LockOptions{"retention-prune", 3600, kT0});
    ASSERT_TRUE(lock.taken_over());
    EXPECT_EQ(lock.taken_over()->time, 0);
  }
}

}  // namespace
}  // namespace pgvault
