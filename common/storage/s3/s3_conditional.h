// Create-if-absent on S3 (s3.h, put() with if_absent): the conditional PUT (`If-None-Match: *`), its
// fallback on a store that refuses the condition with 501 (HEAD before, unconditional upload, settle
// wait, then the stored ETag must be ours), and the recovery of a lost answer. Internal to
// common/storage/s3; the writer (s3_writer.cpp) and the multipart upload (s3_multipart.cpp) use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/storage/s3/s3_client.h"
#include "common/storage/storage.h"

namespace pgvault::s3 {

// How many last bytes of the body the multipart tail check compares (see confirm_ours).
inline constexpr std::size_t kTailCheck = 64;

// Duplicate: "s3 put <where>: the object already exists".
[[noreturn]] void throw_exists(const S3Client& c, const std::string& full);
// One HEAD: Duplicate when the key exists.
void check_absent(S3Client& c, const std::string& full);

// The PUT of `call` with `If-None-Match: *` (and `Expect: 100-continue` while the store's answer is
// unknown, so a 501 costs no body). True when stored; also when a retried attempt got 412 and the
// stored ETag is md5_hex (an earlier attempt stored our body and its answer was lost). False when the
// store does not do conditional writes (now remembered): the caller falls back to an unconditional
// PUT it confirms afterwards. 412 otherwise -> Duplicate; other failures throw (S3Client::fail).
// `attempts`: how many attempts the call has made (its reset counts them).
bool put_conditional(S3Client& c, const std::string& full, Call& call, const std::string& md5_hex,
                     const int& attempts);

// What the writer knows of its body for the tail check: its size and last kTailCheck bytes.
struct OwnTail {
  std::uint64_t size = 0;
  const Bytes* bytes = nullptr;
};

// After an unconditional create-if-absent upload: waits a settle time (2 * took + 250 ms, at most
// 5 s) for a concurrent writer's upload to land, then requires the stored ETag to be `etag`: otherwise
// Duplicate; Transient when the object vanished. tail (multipart, may be null): where the ETag is not
// the MD5 form (SSE-KMS), the object is ours when one suffix-range read shows our size and last bytes.
void confirm_ours(S3Client& c, const std::string& full, const std::string& etag, Clock::duration took,
                  const OwnTail* tail);
// The same check, either now (later == nullptr) or handed to `later` (PutOptions::confirm_later), which
// then waits until the settle time after this call has passed. The tail is copied.
void confirm_ours_or_defer(S3Client& c, const std::string& full, const std::string& etag, Clock::duration took,
                           const OwnTail* tail, DeferredConfirms* later);

}  // namespace pgvault::s3
