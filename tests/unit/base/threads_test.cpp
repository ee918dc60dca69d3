#include "common/base/threads.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <vector>

#include "common/base/errors.h"

namespace pgvault {
namespace {

// Creates real threads until the `fail_at`th call, which fails as std::thread does at the thread limit.
ThreadStarter failing_starter(int fail_at, std::atomic<int>& calls) {
  return [fail_at, &calls](std::function<void()> fn) {
    if (++calls == fail_at) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    return std::thread(std::move(fn));
  };
}

// Workers that run until told to stop (or until a generous timeout, counted as a failure).
struct Workers {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::atomic<int> ended{0};
  std::atomic<int> timed_out{0};
  void stop_all() {
    std::lock_guard g(mu);
    stop = true;
    cv.notify_all();
  }
  void run() {
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, std::chrono::seconds(20), [this] { return stop; })) ++timed_out;
    ++ended;
  }
};

TEST(ThreadGroup, RunsAndJoinsEveryThread) {
  std::atomic<int> ran{0};
  {
    ThreadGroup group;
    group.start_n(5, [&] { ++ran; });
    EXPECT_EQ(group.size(), 5u);
    group.join();
    EXPECT_EQ(ran.load(), 5);
    EXPECT_TRUE(group.empty());
    group.start([&] { ++ran; });
  }  // joined by the destructor
  EXPECT_EQ(ran.load(), 6);
}

TEST(ThreadGroup, AFailedStartIsAnErrorThatStopsTheStartedWorkers) {
  Workers w;
  std::atomic<int> calls{0};
  bool threw = false;
  try {
    ThreadGroup group([&] { w.stop_all(); }, failing_starter(3, calls));
    group.start_n(4, [&] { w.run(); });
  } catch (const Error& e) {
    threw = true;
    EXPECT_EQ(e.kind(), ErrorKind::Internal);
    EXPECT_NE(std::string(e.what()).find("cannot start a worker thread: "), std::string::npos) << e.what();
  }
  EXPECT_TRUE(threw);
  EXPECT_EQ(calls.load(), 3);       // no further start after the failure
  EXPECT_EQ(w.ended.load(), 2);     // the two started workers were joined before the group went away
  EXPECT_EQ(w.timed_out.load(), 0); // ... because the stop function told them to end
}

TEST(ThreadGroup, AnExceptionBeforeJoinDoesNotTerminate) {
  Workers w;
  try {
    ThreadGroup group([&] { w.stop_all(); });
    group.start_n(2, [&] { w.run(); });
    w.stop_all();
    throw Error(ErrorKind::Io, "the producer failed");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
  }
  EXPECT_EQ(w.ended.load(), 2);
}

// Several threads hand memory back at the same moment, each for the first time in its process: in the
// sanitizer builds glibc's malloc has never been initialised then, and its malloc_trim crashed about
// once in 150 runs of the look-ahead (CI's ThreadSanitizer stage). Each round is a fresh process.
TEST(ReleaseFreedMemory, ManyThreadsAtOnceForTheFirstTime) {
  for (int round = 0; round < 40; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      std::atomic<int> waiting{8};
      std::vector<std::thread> threads;
      for (int i = 0; i < 8; ++i) threads.emplace_back([&] {
        --waiting;
        while (waiting.load() > 0) std::this_thread::yield();
        release_freed_memory();
      });
      for (auto& t : threads) t.join();
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "round " << round << ", status " << status;
  }
}

}  // namespace
}  // namespace pgvault
