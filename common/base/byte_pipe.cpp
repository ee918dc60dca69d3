#include "common/base/byte_pipe.h"

#include <algorithm>
#include <chrono>

#include "common/base/errors.h"
#include "common/base/threads.h"

namespace pgvault {

namespace {
constexpr std::size_t kMaxChunk = 1 << 20;  // coalesce small writes into chunks up to this size
constexpr auto kWaitSlice = std::chrono::milliseconds(200);
// A waiting consumer is woken once this much is buffered (or at close): one wake-up per batch instead of
// one per write (a CopyData message: 32 KiB), measured in tests/bench/results/restore-sync.md.
constexpr std::size_t kWakeBytes = 512 << 10;
// Spent chunks kept for the producer's next ones: each chunk's memory is allocated (and faulted in) once
// per pipe instead of once per MiB that passes, which cost pitr-prepare's piped bundles a third more
// system time in page faults (glibc hands a freed MiB back to the system when another thread frees it).
constexpr std::size_t kSpareChunks = 2;
}  // namespace

BytePipe::BytePipe(std::size_t capacity, std::function<void()> check)
    : capacity_(std::max<std::size_t>(capacity, 1)), wake_(std::min(capacity_, kWakeBytes)), check_(std::move(check)) {}

void BytePipe::write(ByteView data) {
  if (data.empty()) return;
  std::unique_lock lock(mu_);
  while (!error_ && buffered_ >= capacity_) {
    cv_.wait_for(lock, kWaitSlice);
    if (!error_ && buffered_ >= capacity_ && check_) check_();
  }
  if (error_) std::rethrow_exception(error_);
  if (!chunks_.empty() && chunks_.back().size() + data.size() <= kMaxChunk) {
    chunks_.back().insert(chunks_.back().end(), data.begin(), data.end());
  } else {
    Bytes& c = chunks_.emplace_back();
    if (!spare_.empty()) {
      c.swap(spare_.back());
      spare_.pop_back();
    }
    c.reserve(std::max(data.size(), std::min(kMaxChunk, capacity_)));  // filled without reallocating
    c.insert(c.end(), data.begin(), data.end());
  }
  buffered_ += data.size();
  if (buffered_ >= wake_) cv_.notify_all();
}

void BytePipe::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

void BytePipe::abort() noexcept {
  std::lock_guard lock(mu_);
  aborted_ = true;
  cv_.notify_all();
}

void BytePipe::fail(std::exception_ptr error) noexcept {
  std::lock_guard lock(mu_);
  if (!error_) error_ = error;
  chunks_.clear();
  buffered_ = 0;
  cv_.notify_all();
}

bool BytePipe::take_chunk(Bytes& chunk) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return aborted_ || buffered_ >= wake_ || closed_; });
  if (aborted_) throw Error(ErrorKind::Interrupted, "the writer into the pipe gave up");
  if (chunks_.empty()) return false;  // closed
  if (chunk.capacity() > 0 && spare_.size() < kSpareChunks) {
    chunk.clear();
    spare_.push_back(std::move(chunk));
  }
  chunk = std::move(chunks_.front());
  chunks_.pop_front();
  buffered_ -= chunk.size();
  cv_.notify_all();
  return true;
}

std::uint64_t BytePipe::pump_into(Sink& dst) {
  std::uint64_t total = 0;
  Bytes chunk;
  while (take_chunk(chunk)) {
    dst.write(ByteView(chunk.data(), chunk.size()));
    total += chunk.size();
  }
  Bytes().swap(chunk);  // freed before finish(), which may wait long (an upload's commit)
  {
    std::lock_guard lock(mu_);
    std::vector<Bytes>().swap(spare_);
  }
  dst.finish();
  return total;
}

void read_beside(BytePipe& pipe, const std::function<void()>& read, const std::function<void()>& write) {
  std::exception_ptr read_error;
  ThreadGroup reader([&pipe] { pipe.abort(); });
  reader.start([&] {
    try {
      read();
    } catch (...) {
      read_error = std::current_exception();
      pipe.abort();
    }
  });
  try {
    write();
  } catch (...) {
    pipe.fail(std::current_exception());
    reader.join();
    if (read_error) std::rethrow_exception(read_error);
    throw;
  }
  reader.join();
  if (read_error) std::rethrow_exception(read_error);
}

}  // namespace pgvault
