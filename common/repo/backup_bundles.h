// The data path of base-push: files are packed into bundles (manifest.h describes the format) and a
// pool of workers compresses, encrypts and uploads them in parallel.
//
// Memory is bounded whatever the database size: at most `max_open` bundles exist at once (the one being
// filled plus those being encoded or waiting for a worker), each holding at most `capacity` bytes
// in memory. A file larger than the bundle size gets a bundle of its own whose pipe is small: it streams
// through one worker to storage while it is received, without being held whole.
//
// Threads: BundleUploader's public calls come from one producer thread; the workers are internal.
// A worker failure (storage, codec) makes the producer's next write() throw that error; abort() from
// the producer makes every worker drop its object (nothing of it becomes visible).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/byte_pipe.h"
#include "common/base/threads.h"
#include "common/codec/codec.h"
#include "common/repo/manifest.h"
#include "common/storage/storage.h"

namespace pgvault {

struct BundleUploaderOptions {
  int workers = 1;                          // encoding/upload threads
  std::size_t max_open = 2;                 // bundles in memory at once (>= 1)
  EncodeOptions encode;                     // codec settings (key pointer must outlive the uploader)
  int large_file_threads = 0;               // zstd threads for a single-file bundle (0: encode.threads)
  // Where the bundles' create-if-absent checks go (PutOptions::confirm_later) when the caller runs them
  // itself, later, before anything names a bundle; nullptr: finish() runs them.
  DeferredConfirms* confirm_later = nullptr;
};

class BundleUploader {
 public:
  // Objects go to keys::backup_bundle(label, index). `check` is called while the producer waits.
  BundleUploader(Storage& storage, std::string label, BundleUploaderOptions opts, std::function<void()> check);
  ~BundleUploader();  // abort() unless finish() returned

  // Starts bundle `index` whose plaintext will be streamed with write(); `capacity` bounds what is held
  // in memory for it. `single_file` marks a bundle holding one large file. Blocks while max_open bundles
  // are unfinished.
  void open(std::uint64_t index, std::size_t capacity, bool single_file);
  void write(ByteView data);
  void close();           // ends the open bundle
  bool is_open() const { return current_ != nullptr; }
  // Waits for every bundle and, unless the options hand them to the caller, for the deferred checks
  // that each is this run's own (PutOptions::confirm_later); throws the first error. Returns them
  // sorted by index.
  std::vector<ManifestBundle> finish();
  // Stops everything; committed bundles stay (the caller deletes them).
  void abort() noexcept;
  // Bundles committed so far (for progress).
  std::uint64_t stored_bytes() const;
  // Every key a worker started to write (committed or not): what the caller may delete as its own.
  std::vector<std::string> written_keys() const;

 private:
  struct Job {
    std::uint64_t index = 0;
    bool single_file = false;
    std::shared_ptr<BytePipe> pipe;
    bool done = false;
    std::exception_ptr error;
    ManifestBundle result;
  };
  void worker();
  void stop_workers();  // tells every worker to end (under mu_)
  void rethrow_failure();  // producer side, mutex held

  Storage& storage_;
  std::string label_;
  BundleUploaderOptions opts_;
  std::function<void()> check_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;        // opened, waiting for a worker
  std::vector<std::shared_ptr<Job>> jobs_;        // all, in order
  std::size_t unfinished_ = 0;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::uint64_t stored_ = 0;
  std::vector<std::string> keys_;
  DeferredConfirms own_confirms_;  // the bundles' create-if-absent checks, run by finish()
  DeferredConfirms& confirms_;     // own_confirms_ or the options' confirm_later
  std::shared_ptr<Job> current_;
  ThreadGroup threads_;  // stop_workers() when one cannot be started
  bool finished_ = false;
};

}  // namespace pgvault
