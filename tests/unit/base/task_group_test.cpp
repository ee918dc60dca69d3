#include "common/base/task_group.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "common/base/progress.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

TEST(TaskGroup, RunsEveryTaskExactlyOnce) {
  TaskGroup g(4);
  std::vector<std::atomic<int>> seen(1000);
  g.run(seen.size(), [&](std::size_t i) { seen[i].fetch_add(1); });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

TEST(TaskGroup, NeverMoreThreadsThanTasks) {
  TaskGroup g(8);
  EXPECT_EQ(g.threads_for(3), 3u);
  EXPECT_EQ(g.threads_for(0), 1u);
  EXPECT_EQ(g.threads_for(100), 8u);
  std::mutex mu;
  std::set<std::thread::id> ids;
  g.run(2, [&](std::size_t) {
    std::lock_guard l(mu);
    ids.insert(std::this_thread::get_id());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  });
  EXPECT_LE(ids.size(), 2u);
}

TEST(TaskGroup, FirstErrorWinsKeepsItsKindAndStopsHandingOutTasks) {
  TaskGroup g(2);
  std::atomic<int> ran{0};
  EXPECT_THROW_KIND(g.run(10000,
                          [&](std::size_t i) {
                            ran.fetch_add(1);
                            if (i == 3) throw Error(ErrorKind::Corruption, "bundle 3 is damaged");
                            if (i > 3) std::this_thread::sleep_for(std::chrono::microseconds(50));
                          }),
                    ErrorKind::Corruption);
  EXPECT_LT(ran.load(), 10000);
  EXPECT_TRUE(g.stop_requested());
}

TEST(TaskGroup, LaterErrorsAreDropped) {
  TaskGroup g(2);
  std::atomic<int> which{0};
  try {
    g.run_workers(2, [&] {
      if (which.fetch_add(1) == 0) throw Error(ErrorKind::Transient, "first");
      while (!g.stop_requested()) std::this_thread::yield();  // the consequence of the first error
      throw Error(ErrorKind::Interrupted, "second");
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "first");
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
  }
}

TEST(TaskGroup, ForeignExceptionBecomesInternal) {
  TaskGroup g(2);
  EXPECT_THROW_KIND(g.run(4, [](std::size_t) { throw std::runtime_error("boom"); }), ErrorKind::Internal);
}

TEST(TaskGroup, CancelStopsWithoutError) {
  TaskGroup g(2);
  std::atomic<int> ran{0};
  g.run(100000, [&](std::size_t i) {
    ran.fetch_add(1);
    if (i == 10) g.cancel();
  });
  EXPECT_LT(ran.load(), 100000);
}

TEST(TaskGroup, RunsAgainAfterAnError) {
  TaskGroup g(2);
  EXPECT_THROW(g.run(4, [](std::size_t) { throw Error(ErrorKind::Io, "x"); }), Error);
  std::atomic<int> ran{0};
  g.run(4, [&](std::size_t) { ran.fetch_add(1); });
  EXPECT_EQ(ran.load(), 4);
}

TEST(TaskGroup, ThreadThatCannotStartIsAnErrorAfterTheOthersEnd) {
  int started = 0;
  std::atomic<int> ran{0};
  TaskGroup g(4, [&](std::function<void()> fn) {
    if (++started > 1) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    return std::thread(std::move(fn));
  });
  EXPECT_THROW_KIND(g.run(1000, [&](std::size_t) { ran.fetch_add(1); }), ErrorKind::Internal);
  EXPECT_EQ(started, 2);  // one thread ran, the second could not start, no third was tried
}

TEST(TaskGroup, TickRunsOnTheCallerWhileWorkersRun) {
  TaskGroup g(2);
  std::atomic<int> ticks{0};
  const auto caller = std::this_thread::get_id();
  bool on_caller = true;
  g.run(
      4, [](std::size_t) { std::this_thread::sleep_for(std::chrono::milliseconds(30)); },
      [&] {
        on_caller = on_caller && std::this_thread::get_id() == caller;
        ticks.fetch_add(1);
      },
      std::chrono::milliseconds(5));
  EXPECT_GE(ticks.load(), 2);  // at least one while running, one at the end
  EXPECT_TRUE(on_caller);
}

TEST(Progress, BytesLineShowsDoneTotalAndPhase) {
  Progress p(false, "restoring 20260101T000000F");
  p.set_total(4 << 20);
  p.add(1 << 20);
  std::string line = p.render();
  EXPECT_NE(line.find("restoring 20260101T000000F: "), std::string::npos) << line;
  EXPECT_NE(line.find("(25%)"), std::string::npos) << line;
  p.set_phase("finishing uploads");
  EXPECT_NE(p.render().find("finishing uploads"), std::string::npos);
}

TEST(Progress, ItemsLineCountsObjects) {
  Progress p(false, "verifying", Progress::Unit::Items, "objects");
  p.set_total(10);
  p.add(3);
  p.add_bytes(2048);
  EXPECT_EQ(p.render().rfind("verifying: 3 of 10 objects, ", 0), 0u) << p.render();
}

}  // namespace
}  // namespace pgvault
