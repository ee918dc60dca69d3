// One multipart upload (s3.h, put() beyond multipart_threshold): CreateMultipartUpload, parts uploaded
// by upload_parallel workers (a ThreadGroup; the first failure wins and stops the others), then
// CompleteMultipartUpload listing every part number with its ETag, or AbortMultipartUpload on failure
// or destruction. Internal to common/storage/s3; used by the writer's thread only (the workers touch
// only the queue and the finished parts, under the mutex).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/base/threads.h"
#include "common/storage/s3/s3_client.h"
#include "common/storage/s3/s3_conditional.h"

namespace pgvault::s3 {

class MultipartUpload {
 public:
  // announced_size: PutOptions::size (grows the part size so the object stays under 10000 parts).
  MultipartUpload(S3Client& c, std::string full, std::optional<std::uint64_t> announced_size);
  ~MultipartUpload() { abort(); }
  MultipartUpload(const MultipartUpload&) = delete;
  MultipartUpload& operator=(const MultipartUpload&) = delete;

  // CreateMultipartUpload, then the workers start.
  void start();
  // The size the next part must have (all parts but the last).
  std::uint64_t next_part_size() const { return part_size(next_part_); }
  // Queues the next part; waits while upload_parallel parts are queued. Rethrows the first failure.
  void send(Bytes data);
  // Waits for the parts, then completes the upload. if_absent: create-if-absent as s3.h says
  // (`If-None-Match: *` where the store is not known to refuse it, HEAD before, and where the store is
  // not known to honour it, confirm_ours with the tail check, or handed to `confirm_later`). Throws on
  // any failure (the caller aborts).
  void complete(bool if_absent, const OwnTail& tail, DeferredConfirms* confirm_later = nullptr);
  // Stops the workers and aborts the upload on the store (best effort, never throws). Does nothing
  // after a successful complete().
  void abort() noexcept;

 private:
  struct Part {
    int number = 0;
    Bytes data;
  };
  struct Done {
    std::string etag;
    std::string md5;  // raw
  };

  std::uint64_t part_size(int number) const;
  void work();
  void upload_part(const Part& p);
  void stop_workers() noexcept;
  void finish_workers() noexcept;
  std::string complete_xml(std::string* expected_etag) const;
  HttpResponse send_complete(Call& call, bool if_absent, Clock::time_point* started);
  bool accept_complete(const HttpResponse& r, const std::string& body, const Call& call, int attempts,
                       const std::string& expected_etag);

  S3Client& c_;
  std::string full_;
  std::optional<std::uint64_t> announced_size_;
  std::string upload_id_;
  int next_part_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Part> queue_;
  std::map<int, Done> done_parts_;
  std::exception_ptr error_;
  bool closing_ = false;
  std::atomic<bool> cancel_{false};
  // Last: destroyed (joined) before everything its workers use.
  ThreadGroup workers_{[this] { stop_workers(); }};
};

}  // namespace pgvault::s3
