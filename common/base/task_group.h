// TaskGroup: the one worker pool of pgvault. Runs a list of tasks, or a number of looping workers, on
// threads of a ThreadGroup, with "first error wins" and cancellation.
//
// Contract:
// - run(count, task) calls task(i) for every i in [0, count) on up to `workers` threads (never more
//   threads than tasks), each index exactly once unless the group stops. run_workers(n, worker) starts
//   n threads that each call worker() once (a worker that pulls from its own queue).
// - The first exception thrown by a task or worker is kept (a pgvault::Error as it is, any other
//   std::exception as ErrorKind::Internal); the group then stops: no further task is handed out and
//   stop_requested() turns true, so long tasks can end early. Later exceptions are dropped (they are
//   usually consequences of the first, e.g. Interrupted). run() rethrows the first one after every
//   thread has ended.
// - cancel() (any thread, e.g. a signal-watching caller or a task that decides the rest is pointless)
//   stops the group without an error.
// - `on_tick`, when given, runs on the calling thread every `tick` while the workers run, and once more
//   at the end (progress lines); an exception from it stops the group and is rethrown like a task's.
// - A thread that cannot be created stops the group; run() then throws that error (Internal) after the
//   threads already started have ended.
// - One run() at a time per TaskGroup; the group may be run again afterwards.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>

#include "common/base/errors.h"
#include "common/base/threads.h"

namespace pgvault {

// The first error of threads that share one outcome (a TaskGroup's tasks, or any threads of one job):
// record() keeps the first exception (a pgvault::Error as it is, any other std::exception as
// ErrorKind::Internal) and drops the later ones; rethrow() throws the kept one, if any.
class FirstError {
 public:
  void record(std::exception_ptr e) noexcept;
  void rethrow();
  void reset();

 private:
  std::mutex mu_;
  std::optional<Error> first_;
};

class TaskGroup {
 public:
  // workers <= 0: one per core (std::thread::hardware_concurrency(), at least 1).
  explicit TaskGroup(int workers, ThreadStarter starter = {});

  using Tick = std::function<void()>;
  void run(std::size_t count, const std::function<void(std::size_t)>& task, const Tick& on_tick = {},
           std::chrono::milliseconds tick = std::chrono::milliseconds(500));
  void run_workers(std::size_t n, const std::function<void()>& worker, const Tick& on_tick = {},
                   std::chrono::milliseconds tick = std::chrono::milliseconds(500));

  void cancel() noexcept { stop_.store(true); }
  bool stop_requested() const noexcept { return stop_.load(); }
  // The number of threads run(count, ...) uses: min(workers, count), at least 1.
  std::size_t threads_for(std::size_t count) const;

 private:
  void record(std::exception_ptr e) noexcept;
  void launch(std::size_t n, const std::function<void()>& body, const Tick& on_tick, std::chrono::milliseconds tick);

  std::size_t workers_;
  ThreadStarter starter_;
  std::atomic<bool> stop_{false};
  FirstError first_;
};

}  // namespace pgvault
