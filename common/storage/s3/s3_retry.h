// The S3 client's retry policy and the mapping of a failed answer to an ErrorKind (s3.h, "Retries").
// Internal to common/storage/s3.
#pragma once

#include <chrono>
#include <random>
#include <string>

#include "common/base/errors.h"
#include "common/storage/s3/s3.h"
#include "common/storage/s3/transport.h"

namespace pgvault::s3 {

// A network failure worth another attempt (connect, timeout, reset, partial body...): a CURLcode.
bool retryable_curl(int code);
// A TLS verification failure (a configuration error, never retried).
bool tls_failure(int code);
// 5xx but 501, 429, 408, and the 400s that mean "send it again" (RequestTimeout, BadDigest...).
bool retryable_http(long status, const std::string& code);
// The store does not implement what the request asked (Swift's s3api on a conditional PUT): 501 or
// <Code>NotImplemented</Code>.
bool not_implemented(const HttpResponse& r);

// The wait before retry number `retry` (1 = the first retry): full jitter, a random delay in
// [0, min(retry_max_delay_ms, retry_base_ms * 2^(retry-1))] (at least [0, 1] ms).
std::chrono::milliseconds backoff_delay(const S3Options& o, int retry, std::mt19937_64& rng);

// The kind of a failed answer (401/403 Auth, 404 NotFound or Config for NoSuchBucket, 301/307 and some
// 400s Config, 409 Conflict, 412 Duplicate, 5xx Transient, else Internal) and a hint for the operator
// (" (check secret_access_key)"...), empty when none.
struct StatusError {
  ErrorKind kind = ErrorKind::Internal;
  std::string hint;
};
StatusError classify_status(long status, const std::string& code);

}  // namespace pgvault::s3
