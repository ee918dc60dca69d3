// The s3 storage backend: any S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Swift s3api)
// through libcurl, signed with AWS Signature Version 4 (common/storage/s3/sigv4.h).
//
// Contract: the Storage contract of common/storage/storage.h, plus:
// - put(): objects up to multipart_threshold are sent in one PUT (spooled to an unnamed temporary file
//   when their size is announced, else buffered in memory) with
//   Content-MD5 and a signed SHA-256 payload hash (the server rejects a body altered in transit).
//   Larger ones switch to a multipart upload: parts of part_size bytes (grown for very large objects to
//   stay under 10000 parts), upload_parallel of them in flight, each with its own Content-MD5. Memory
//   per writer stays below multipart_threshold + 2 * upload_parallel * part_size. A writer destroyed or
//   failing before commit() aborts the multipart upload (best effort: a bucket lifecycle rule
//   "AbortIncompleteMultipartUpload" cleans what a killed process leaves).
//   if_absent: HEAD first (Duplicate when present), then the PUT (or CompleteMultipartUpload) carries
//   `If-None-Match: *` (412 -> Duplicate), which makes create-if-absent atomic on stores with conditional
//   writes (AWS S3, MinIO, R2, Ceph RGW). A store that answers it 501 NotImplemented (Swift's s3api) is
//   remembered as such, in this process for every thread and Storage and across processes in the capability file
//   (see s3caps below; re-probed after kMaxAgeS or for another endpoint/bucket). The probe is sent with
//   `Expect: 100-continue` so a 501 costs a round trip, not the body. On such a store (and for multipart
//   uploads on a store not known to honour the condition, since Swift ignores it on
//   CompleteMultipartUpload) the writer does HEAD, unconditional PUT/complete, waits a settle time
//   (twice the upload's duration + 250 ms, at most 5 s) for a concurrent writer's upload to land, then
//   requires the stored ETag to be its own (MD5 of its body; multipart: MD5 of the part MD5s "-N", or,
//   where ETags are not MD5s (SSE-KMS), its size and last 64 bytes read by one suffix-range GET):
//   otherwise commit() throws Duplicate (with PutOptions::confirm_later that last check is handed to the
//   caller, who runs it later; commit() returns after the upload). A store that accepts If-None-Match
//   on PUT but silently ignores it cannot be told from one that honours it: there create-if-absent is
//   only HEAD then PUT. Residual window: a concurrent writer whose HEAD ran before this object landed and
//   whose own upload lands after the settle time replaces it after commit() returned.
// - get_tail(): one suffix-range GET (`Range: bytes=-n`); the size comes from that answer's
//   Content-Range, so size and bytes belong to one version.
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
// - Requests go through an HttpTransport (transport.h): by default libcurl (http.h), one easy handle per
//   concurrent request, reused across requests (connection reuse). Every s3 Storage of a process on the
//   same endpoint and transport settings shares one such transport, and those on the same endpoint,
//   bucket and capability file share what is known of conditional writes (s3_shared.h): look-ahead
//   threads that each open a repository reuse each other's connections and learn a 501 once. The Storage is thread-safe; writers
//   and readers are used by one thread each and must not outlive the Storage.
//
// Where the code lives: s3_config (options, endpoint), s3_client (signing, one call), s3_retry (retry
// policy, status -> ErrorKind), s3_storage and s3_list (the Storage, listing, deletes), s3_reader (get,
// get_tail), s3_writer and s3_spool (put), s3_multipart (multipart upload), s3_conditional and s3_caps
// (create-if-absent and the remembered conditional-write capability).
// - Nothing secret is logged (spdlog::debug lines carry method, bucket, key, status, attempt).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/storage/storage.h"

namespace pgvault {

class HttpTransport;

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
  // Default: "" = s3caps::default_file(). Where the conditional-write capability is remembered across
  // processes; "none": only inside this process.
  std::string capability_file;
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

// The remembered answer of a store to conditional writes, one line per endpoint and bucket:
// "<unix time> <yes|no> <endpoint> <bucket>". The file lives in a directory owned by the user and
// closed to others (a planted file must not switch the condition off); any doubt (missing, foreign,
// unreadable, stale, other endpoint) reads as "unknown", which means: probe again. Writes are best effort
// (temporary file + rename; never an error). A remembered "no" only saves the probe: the writer still
// checks with HEAD before and confirms the stored ETag after, so it never overwrites an object that
// existed before the put started.
namespace s3caps {
enum class Cond { Unknown, Supported, Unsupported };
inline constexpr std::int64_t kMaxAgeS = 3600;
inline constexpr std::size_t kMaxEntries = 64;
// $XDG_RUNTIME_DIR/pgvault/s3-capabilities, else ${TMPDIR:-/tmp}/pgvault-<uid>/s3-capabilities; the
// directory is created 0700. "" when no such directory can be made safe.
std::string default_file();
Cond recall(const std::string& file, const std::string& endpoint, const std::string& bucket, std::int64_t now);
void remember(const std::string& file, const std::string& endpoint, const std::string& bucket, Cond cond,
              std::int64_t now);
}  // namespace s3caps

// "bytes FIRST-LAST/TOTAL" (unsatisfied = false) or "bytes */TOTAL" (unsatisfied = true, as a 416 says).
struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::uint64_t total = 0;
  bool unsatisfied = false;
};
// nullopt unless the header is exactly one of those forms with first <= last < total.
std::optional<ContentRange> parse_content_range(std::string_view header);

// Validates the options (Config errors name the field) and returns the backend. Makes no request.
std::unique_ptr<Storage> make_s3_storage(const S3Options& options);
// The same over another transport (tests: a scripted one); `transport` must not be null.
std::unique_ptr<Storage> make_s3_storage(const S3Options& options, std::shared_ptr<HttpTransport> transport);

}  // namespace pgvault
