// A group of worker threads that is joined on every path out of its scope, and whose failure to start a
// thread is a pgvault::Error, never std::terminate.
//
// Contract:
// - start(fn) runs fn in a new thread. When the thread cannot be created (std::system_error, e.g. EAGAIN
//   at the process or user thread limit, or out of memory), the group calls its `stop` function (which
//   must make the workers already started end soon: set their stop flag, wake them), then throws
//   Error(Internal, "cannot start a worker thread: ..."). The workers already started keep running until
//   they end; the destructor (or join()) waits for them.
// - join() waits for every started thread; the destructor joins too, so an exception between start() and
//   join() never leaves a joinable std::thread behind (whose destructor would call std::terminate).
//   Declare the group after everything its workers use, so it is destroyed (joined) first.
// - A ThreadGroup is used by the one thread that owns it; the workers never touch it.
#pragma once

#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace pgvault {

// Creates a thread running fn. The default is std::thread's constructor; tests pass one that fails.
using ThreadStarter = std::function<std::thread(std::function<void()> fn)>;

class ThreadGroup {
 public:
  // `stop`: called when a thread cannot be started (may be empty when the workers end by themselves).
  // `starter`: how threads are created. Default: std::thread.
  explicit ThreadGroup(std::function<void()> stop = {}, ThreadStarter starter = {});
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;
  ~ThreadGroup();

  void start(std::function<void()> fn);
  // start(fn) n times.
  void start_n(std::size_t n, const std::function<void()>& fn);
  // Waits for every started thread. The group may be used again afterwards.
  void join() noexcept;
  std::size_t size() const { return threads_.size(); }
  bool empty() const { return threads_.empty(); }

 private:
  std::function<void()> stop_;
  ThreadStarter starter_;
  std::vector<std::thread> threads_;
};

// Hands the calling thread's freed heap memory back to the system (glibc's malloc_trim: glibc keeps
// per-thread arenas, and a thread that pushes several files would grow the process's peak RSS). Safe
// from several threads at once. Does nothing in a sanitizer build, whose allocator is not glibc's: there
// glibc's malloc is never initialised before the threads start, and its first malloc_trim, called by two
// threads at once, may crash inside glibc.
void release_freed_memory() noexcept;

}  // namespace pgvault
