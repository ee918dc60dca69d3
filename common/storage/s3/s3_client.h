// The S3 client under the s3 Storage: builds and signs one request of the S3 API, sends it through the
// HttpTransport (transport.h) with the retry policy of s3_retry.h, and turns a failed answer into an
// Error of the right kind. Internal to common/storage/s3; the contract is in s3.h.
//
// Thread-safety: an S3Client is shared by the Storage, its readers and writers and their threads; its
// methods may be called concurrently (the transport is thread-safe, the conditional-write knowledge is
// atomic). A Call and what its callbacks capture belong to the one thread running it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/storage/s3/s3.h"
#include "common/storage/s3/s3_caps.h"
#include "common/storage/s3/s3_config.h"
#include "common/storage/s3/sigv4.h"
#include "common/storage/s3/transport.h"

namespace pgvault::s3 {

using Clock = std::chrono::steady_clock;

// Thrown by a response check (or body callback) to ask for another attempt (truncated body, error
// inside a 200...). Counts as a retryable failure.
struct RetryRequest {
  std::string why;
};

// One HTTP exchange of the S3 API, with what it needs to be retried.
struct Call {
  std::string op;       // for messages: "put", "get", "list"...
  std::string method;
  std::string key;      // full key inside the bucket; "" for bucket-level requests
  sigv4::Pairs query;
  sigv4::Pairs headers;  // extra signed headers
  ByteView body;
  int body_fd = -1;          // or the body read from this file (see HttpRequest); payload_hash then required
  std::uint64_t body_size = 0;
  std::string payload_hash;  // computed from body when empty
  std::function<void()> reset;                     // before every attempt (drop a partial body)
  std::function<void(ByteView)> on_body;           // 2xx body
  std::function<void(const HttpResponse&)> check;  // after a 2xx: may throw RetryRequest
  const std::atomic<bool>* cancel = nullptr;
  bool expect_continue = false;  // see HttpRequest
};

Call make_call(std::string op, std::string method, std::string key);
// A Call whose 2xx body is collected into *body (cleared before every attempt).
Call make_collecting_call(std::string op, std::string method, std::string key, std::string* body);

class S3Client {
 public:
  // `options` must have passed validate_options(); `cond` is what is known of this store's conditional
  // writes (shared_cond_writes, s3_shared.h).
  S3Client(const S3Options& options, std::shared_ptr<HttpTransport> transport, std::shared_ptr<CondWrites> cond);

  const S3Options& options() const { return opt_; }
  const std::string& prefix() const { return prefix_; }
  std::string full_key(const std::string& key) const { return prefix_ + key; }
  // "s3://bucket/full/key", for messages.
  std::string where(const std::string& full) const { return "s3://" + opt_.bucket + "/" + full; }
  // "s3://bucket[/prefix]" (Storage::describe).
  std::string describe() const;

  // Sends the call, retrying as s3_retry.h says. Returns the first 2xx answer that passed call.check,
  // or the first answer that is not retried; throws Transient when retries are exhausted, Interrupted
  // when call.cancel was set, Config on a TLS verification failure.
  HttpResponse execute(const Call& call);
  // HEAD of a full key: nullopt on 404; other failures throw (fail()).
  std::optional<HttpResponse> head_raw(const std::string& full);
  // Throws the Error for a failed answer: kind from s3_retry.h, message naming op, bucket, key, HTTP
  // status and the server's <Code> and <Message>.
  [[noreturn]] void fail(const HttpResponse& r, const Call& call) const;
  // What this process knows of the store's conditional writes (s3_caps.h).
  CondWrites& cond_writes() { return *cond_; }

 private:
  HttpResponse attempt(const Call& call);
  std::string url_and_path(const Call& call, std::string* host, std::string* path) const;

  S3Options opt_;
  Endpoint ep_;
  std::string prefix_;
  std::shared_ptr<HttpTransport> transport_;
  std::shared_ptr<CondWrites> cond_;
};

}  // namespace pgvault::s3
