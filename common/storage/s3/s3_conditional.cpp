#include "common/storage/s3/s3_conditional.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "common/base/errors.h"
#include "common/storage/s3/s3_parse.h"
#include "common/storage/s3/s3_reader.h"
#include "common/storage/s3/s3_retry.h"

namespace pgvault::s3 {

void throw_exists(const S3Client& c, const std::string& full) {
  throw Error(ErrorKind::Duplicate, "s3 put " + c.where(full) + ": the object already exists");
}

void check_absent(S3Client& c, const std::string& full) {
  if (c.head_raw(full)) throw_exists(c, full);
}

bool put_conditional(S3Client& c, const std::string& full, Call& call, const std::string& md5_hex,
                     const int& attempts) {
  call.headers.emplace_back("if-none-match", "*");
  call.expect_continue = c.cond_writes().get() == s3caps::Cond::Unknown;  // a probe: a 501 costs no body
  auto r = c.execute(call);
  call.headers.pop_back();
  call.expect_continue = false;
  if (r.status >= 200 && r.status < 300) {
    c.cond_writes().learned(s3caps::Cond::Supported);
    return true;
  }
  if (r.status == 412) {
    c.cond_writes().learned(s3caps::Cond::Supported);
    if (attempts > 1) {
      // A lost answer to an earlier attempt that did store the object? Same MD5 means it was ours.
      auto h = c.head_raw(full);
      if (h && etag_value(h->header("etag")) == md5_hex) return true;
    }
    throw_exists(c, full);
  }
  if (!not_implemented(r)) c.fail(r, call);
  c.cond_writes().learned(s3caps::Cond::Unsupported);
  return false;
}

namespace {

// How long another writer's upload that passed its HEAD while ours was in flight is given to land:
// scaled by how long ours took.
Clock::duration settle_time(Clock::duration took) {
  using std::chrono::milliseconds;
  return std::clamp<Clock::duration>(2 * took + milliseconds(250), milliseconds(250), milliseconds(5000));
}

// Once the settle time has passed (`settled`), requires the stored object to be ours: its ETag is the MD5
// of our body (single PUT) or of our part MD5s (multipart). Anything else means another writer's bytes
// are stored: Duplicate.
void confirm_at(S3Client& c, const std::string& full, const std::string& etag, Clock::time_point settled,
                const OwnTail* tail) {
  std::this_thread::sleep_until(settled);
  auto h = c.head_raw(full);
  if (!h) {
    throw Error(ErrorKind::Transient, "s3 put " + c.where(full) + ": the object vanished right after its upload");
  }
  const std::string stored = etag_value(h->header("etag"));
  if (stored != etag && tail != nullptr) {
    ObjectTail t = read_tail(c, full, kTailCheck);
    if (t.size == tail->size && t.bytes == *tail->bytes) {
      spdlog::debug("s3 put {}: etag {} is not the MD5 form, size and last bytes are ours", c.where(full), stored);
      return;
    }
  }
  if (stored != etag) {
    throw Error(ErrorKind::Duplicate, "s3 put " + c.where(full) + ": another writer stored this key during the upload "
                                      "(stored etag " + stored + ", ours " + etag + ")");
  }
}

}  // namespace

void confirm_ours(S3Client& c, const std::string& full, const std::string& etag, Clock::duration took,
                  const OwnTail* tail) {
  confirm_at(c, full, etag, Clock::now() + settle_time(took), tail);
}

void confirm_ours_or_defer(S3Client& c, const std::string& full, const std::string& etag, Clock::duration took,
                           const OwnTail* tail, DeferredConfirms* later) {
  if (later == nullptr) {
    confirm_ours(c, full, etag, took, tail);
    return;
  }
  const Clock::time_point settled = Clock::now() + settle_time(took);
  std::optional<Bytes> tail_bytes;
  std::uint64_t tail_size = 0;
  if (tail != nullptr && tail->bytes != nullptr) tail_bytes = *tail->bytes, tail_size = tail->size;
  // The client outlives the writer's caller (it belongs to the Storage that made the writer).
  later->add([&c, full, etag, settled, tail_bytes = std::move(tail_bytes), tail_size] {
    OwnTail own{tail_size, tail_bytes ? &*tail_bytes : nullptr};
    confirm_at(c, full, etag, settled, tail_bytes ? &own : nullptr);
  });
}

}  // namespace pgvault::s3
