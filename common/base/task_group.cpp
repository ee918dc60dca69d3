#include "common/base/task_group.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <thread>

namespace pgvault {

TaskGroup::TaskGroup(int workers, ThreadStarter starter)
    : workers_(workers > 0 ? static_cast<std::size_t>(workers)
                           : std::max<std::size_t>(1, std::thread::hardware_concurrency())),
      starter_(std::move(starter)) {}

std::size_t TaskGroup::threads_for(std::size_t count) const {
  return std::max<std::size_t>(1, std::min(workers_, count));
}

void FirstError::record(std::exception_ptr e) noexcept {
  std::lock_guard g(mu_);
  if (first_) return;
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    first_ = err;
  } catch (const std::exception& err) {
    first_ = Error(ErrorKind::Internal, err.what());
  } catch (...) {
    first_ = Error(ErrorKind::Internal, "unknown exception in a worker thread");
  }
}

void FirstError::rethrow() {
  std::lock_guard g(mu_);
  if (first_) throw *first_;
}

void FirstError::reset() {
  std::lock_guard g(mu_);
  first_.reset();
}

void TaskGroup::record(std::exception_ptr e) noexcept {
  first_.record(e);
  stop_.store(true);
}

void TaskGroup::run(std::size_t count, const std::function<void(std::size_t)>& task, const Tick& on_tick,
                    std::chrono::milliseconds tick) {
  if (count == 0) return;
  std::atomic<std::size_t> next{0};
  auto body = [&] {
    for (std::size_t i; !stop_.load() && (i = next.fetch_add(1)) < count;) task(i);
  };
  launch(threads_for(count), body, on_tick, tick);
}

void TaskGroup::run_workers(std::size_t n, const std::function<void()>& worker, const Tick& on_tick,
                            std::chrono::milliseconds tick) {
  if (n == 0) return;
  launch(n, worker, on_tick, tick);
}

void TaskGroup::launch(std::size_t n, const std::function<void()>& body, const Tick& on_tick,
                       std::chrono::milliseconds tick) {
  stop_.store(false);
  first_.reset();
  std::mutex mu;
  std::condition_variable cv;
  std::size_t running = 0;
  auto wrapped = [&] {
    try {
      body();
    } catch (...) {
      record(std::current_exception());
    }
    std::lock_guard g(mu);
    --running;
    cv.notify_all();
  };
  {
    ThreadGroup threads([this] { stop_.store(true); }, starter_);
    try {
      for (std::size_t i = 0; i < n; ++i) {
        {
          std::lock_guard g(mu);
          ++running;
        }
        try {
          threads.start(wrapped);
        } catch (...) {
          std::lock_guard g(mu);
          --running;
          throw;
        }
      }
    } catch (...) {
      record(std::current_exception());
    }
    std::unique_lock lk(mu);
    while (running > 0) {
      if (on_tick) {
        cv.wait_for(lk, tick);
        bool still_running = running > 0;
        lk.unlock();
        try {
          if (still_running) on_tick();
        } catch (...) {
          record(std::current_exception());
        }
        lk.lock();
      } else {
        cv.wait(lk);
      }
    }
    lk.unlock();
    threads.join();
  }
  if (on_tick) {
    try {
      on_tick();
    } catch (...) {
      record(std::current_exception());
    }
  }
  first_.rethrow();
}

}  // namespace pgvault
