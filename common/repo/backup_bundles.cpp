#include "common/repo/backup_bundles.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <csignal>

#include <algorithm>
#include <chrono>

#include "common/base/errors.h"
#include "common/repo/repo.h"

namespace pgvault {

namespace {
constexpr auto kWaitSlice = std::chrono::milliseconds(200);
}  // namespace

// ------------------------------------------------------------------------------------- BundleUploader

BundleUploader::BundleUploader(Storage& storage, std::string label, BundleUploaderOptions opts,
                               std::function<void()> check)
    : storage_(storage), label_(std::move(label)), opts_(std::move(opts)), check_(std::move(check)),
      confirms_(opts_.confirm_later != nullptr ? *opts_.confirm_later : own_confirms_),
      threads_([this] { stop_workers(); }) {
  opts_.workers = std::max(opts_.workers, 1);
  opts_.max_open = std::max<std::size_t>(opts_.max_open, 1);
  // Workers block SIGINT/SIGTERM so the signals reach the producer thread, whose waits they interrupt.
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  struct RestoreMask {
    sigset_t old;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
  } mask;
  pthread_sigmask(SIG_BLOCK, &block, &mask.old);
  threads_.start_n(static_cast<std::size_t>(opts_.workers), [this] { worker(); });
}

void BundleUploader::stop_workers() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

BundleUploader::~BundleUploader() {
  if (!finished_) abort();
}

void BundleUploader::worker() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      keys_.push_back(keys::backup_bundle(label_, job->index));
    }
    std::exception_ptr error;
    ManifestBundle result;
    try {
      std::string key = keys::backup_bundle(label_, job->index);
      EncodeOptions eo = opts_.encode;
      eo.bound_name = key;
      if (job->single_file && opts_.large_file_threads > 0) eo.threads = opts_.large_file_threads;
      // Create-if-absent, its check (a store without conditional writes) deferred to finish(): the
      // worker is free for the next bundle instead of waiting out the settle time.
      auto writer = storage_.put(key, PutOptions{.if_absent = true, .size = {}, .confirm_later = &confirms_});
      ObjectEncoder enc(*writer, eo);
      job->pipe->pump_into(enc);  // finish() commits the object
      result.index = job->index;
      result.plain_size = enc.digest().size;
      result.stored_size = enc.encoded_size();
      result.sha256 = enc.digest().hex();
      spdlog::debug("bundle {} stored: {} bytes, {} stored", key, result.plain_size, result.stored_size);
    } catch (...) {
      error = std::current_exception();
      job->pipe->fail(error);
    }
    std::lock_guard lock(mu_);
    job->done = true;
    job->error = error;
    job->result = result;
    if (error && !failure_) failure_ = error;
    if (!error) stored_ += result.stored_size;
    --unfinished_;
    cv_.notify_all();
  }
}

void BundleUploader::rethrow_failure() {
  if (failure_) std::rethrow_exception(failure_);
}

void BundleUploader::open(std::uint64_t index, std::size_t capacity, bool single_file) {
  if (current_) close();
  std::unique_lock lock(mu_);
  while (!failure_ && unfinished_ >= opts_.max_open) {
    cv_.wait_for(lock, kWaitSlice);
    if (check_) check_();
  }
  rethrow_failure();
  auto job = std::make_shared<Job>();
  job->index = index;
  job->single_file = single_file;
  job->pipe = std::make_shared<BytePipe>(capacity, check_);
  jobs_.push_back(job);
  queue_.push_back(job);
  ++unfinished_;
  current_ = job;
  cv_.notify_all();
}

void BundleUploader::write(ByteView data) {
  if (!current_) throw Error(ErrorKind::Internal, "bundle write without an open bundle");
  {
    std::lock_guard lock(mu_);
    rethrow_failure();
  }
  current_->pipe->write(data);
}

void BundleUploader::close() {
  if (!current_) return;
  current_->pipe->close();
  current_.reset();
}

std::vector<ManifestBundle> BundleUploader::finish() {
  close();
  {
    std::unique_lock lock(mu_);
    while (!failure_ && unfinished_ > 0) {
      cv_.wait_for(lock, kWaitSlice);
      if (check_) check_();
    }
    rethrow_failure();
    stopping_ = true;
    cv_.notify_all();
  }
  threads_.join();
  finished_ = true;
  if (&confirms_ == &own_confirms_) confirms_.run();  // every bundle is this run's own before anything names it
  std::vector<ManifestBundle> out;
  for (const auto& j : jobs_) out.push_back(j->result);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return out;
}

void BundleUploader::abort() noexcept {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& j : jobs_) {
      if (!j->done) j->pipe->abort();
    }
    cv_.notify_all();
  }
  current_.reset();
  threads_.join();
  finished_ = true;
}

std::vector<std::string> BundleUploader::written_keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

std::uint64_t BundleUploader::stored_bytes() const {
  std::lock_guard lock(mu_);
  return stored_;
}

}  // namespace pgvault
