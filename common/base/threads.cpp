#include "common/base/threads.h"

#include <malloc.h>

#include <system_error>
#include <utility>

#include "common/base/errors.h"

namespace pgvault {

ThreadGroup::ThreadGroup(std::function<void()> stop, ThreadStarter starter)
    : stop_(std::move(stop)), starter_(std::move(starter)) {}

ThreadGroup::~ThreadGroup() { join(); }

void ThreadGroup::start(std::function<void()> fn) {
  // Room first: once the thread exists, storing it must not fail (a joinable std::thread destroyed
  // unjoined calls std::terminate).
  threads_.reserve(threads_.size() + 1);
  try {
    threads_.push_back(starter_ ? starter_(std::move(fn)) : std::thread(std::move(fn)));
  } catch (const std::system_error& e) {
    if (stop_) stop_();
    throw Error(ErrorKind::Internal, std::string("cannot start a worker thread: ") + e.what());
  }
}

void ThreadGroup::start_n(std::size_t n, const std::function<void()>& fn) {
  for (std::size_t i = 0; i < n; ++i) start(fn);
}

void ThreadGroup::join() noexcept {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void release_freed_memory() noexcept {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  ::malloc_trim(0);
#endif
}

}  // namespace pgvault
