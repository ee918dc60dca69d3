// The s3 storage backend: any S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Swift s3api)
// through libcurl, signed with AWS Signature Version 4 (common/sigv4.h).
//
// Contract: the Storage contract of common/storage.h, plus:
// - put(): objects up to multipart_threshold are sent in one PUT (spooled to an unnamed temporary file
//   when their size is announced, else buffered in memory) with
//   Content-MD5 and a signed SHA-256 payload hash (the server rejects a body altered in transit).
//   Larger ones switch to a multipart upload: parts of part_size bytes (grown for very large objects to
//   stay under 10000 parts), upload_parallel of them in flight, each with its own Content-MD5. Memory
//   per writer stays below multipart_threshold + 2 * upload_parallel * part_size. A writer destroyed or
//   failing before commit() aborts the multipart upload (best effort: a bucket lifecycle rule
//   "AbortIncompleteMultipartUpload" cleans what a killed process leaves).
//   if_absent: HEAD first (Duplicate when present), then the PUT carries `If-None-Match: *` where the
//   store supports it (412 -> Duplicate); the multipart path re-checks with HEAD before completing.
// - get(): ranged GETs of get_chunk_size bytes, each verified against Content-Range/Content-Length and
//   pinned to the first answer's ETag (If-Match), so a reader never mixes two versions and a truncated
//   body is retried, then reported, never taken for the end of the object. The first request is made
//   by get() itself, so a missing key throws NotFound there. Content corruption that keeps the length
//   is not detected here: the object codec verifies SHA-256 (and the AEAD tag) on every decode.
// - Retries: exponential backoff with full jitter on 5xx, 429/SlowDown, RequestTimeout, BadDigest,
//   curl connect/timeout/reset/partial-body errors; at most max_retries retries and no new attempt
//   after total_timeout_s. Exhausted retries -> Transient. 403 -> Auth. 404 -> NotFound on objects
//   (Config for NoSuchBucket). Not retried: other 4xx. Messages name the bucket, key, HTTP status and
//   the server's <Code> and <Message>.
// - One curl handle per thread, reused across requests (connection reuse). The Storage is thread-safe;
//   writers and readers are used by one thread each and must not outlive the Storage.
// - Nothing secret is logged (spdlog::debug lines carry method, bucket, key, status, attempt).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/storage.h"

namespace pgvault {

struct S3Options {
  // Required. The bucket name.
  std::string bucket;
  // Default: "". Key prefix inside the bucket; a trailing '/' is added when missing.
  std::string prefix;
  // Default: "" = https://s3.<region>.amazonaws.com. "https://host[:port]" or "http://host[:port]"
  // (plain http only when written so).
  std::string endpoint;
  // Default: "us-east-1".
  std::string region = "us-east-1";
  // Default: "path". "path" (https://host/bucket/key) or "virtual" (https://bucket.host/key).
  std::string uri_style = "path";
  // Required. Credentials; session_token is optional (temporary credentials).
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  // Default: true. Verify the server's TLS certificate and host name.
  bool verify_tls = true;
  // Default: "" (system CAs). PEM file of CAs to trust instead.
  std::string ca_file;
  // Default: 20 MiB. Objects up to this size go in one PUT (a 16 MiB WAL segment does, even
  // uncompressed and encrypted); beyond it, multipart.
  std::uint64_t multipart_threshold = 20ull << 20;
  // Default: 8 MiB. Multipart part size (5 MiB minimum, S3's rule).
  std::uint64_t part_size = 8ull << 20;
  // Default: 4. Parts uploaded at once per writer.
  int upload_parallel = 4;
  // Default: "" ($TMPDIR, else /var/tmp). Where a single-PUT body is spooled (an unnamed O_TMPFILE file,
  // so nothing is left behind); when that fails the body is buffered in memory.
  std::string spill_dir;
  // Default: 8 MiB. Bytes per ranged GET (memory per reader).
  std::uint64_t get_chunk_size = 8ull << 20;
  // Default: 8. Retries of one request after the first attempt.
  int max_retries = 8;
  // Default: 200 ms and 15 s. Backoff: a random delay in [0, min(max, base * 2^attempt)].
  int retry_base_ms = 200;
  int retry_max_delay_ms = 15000;
  // Default: 300 s. No new attempt of a request starts after this much time since its first attempt.
  int total_timeout_s = 300;
  // Default: 10 s. TCP connect and TLS handshake.
  int connect_timeout_s = 10;
  // Default: 1024 bytes/s for 30 s. A transfer (or a wait for an answer) slower than this is cut and
  // retried: what catches a stalled connection.
  int low_speed_limit = 1024;
  int low_speed_time_s = 30;
  // Default: 0 (none). Upper bound on one request attempt, in seconds.
  int request_timeout_s = 0;
};

// Validates the options (Config errors name the field) and returns the backend. Makes no request.
std::unique_ptr<Storage> make_s3_storage(const S3Options& options);

}  // namespace pgvault
