#include "common/storage/s3/s3_multipart.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/base/errors.h"
#include "common/storage/s3/s3_parse.h"
#include "common/storage/s3/s3_retry.h"
#include "common/storage/s3/s3_xml.h"

namespace pgvault::s3 {
namespace {

constexpr std::uint64_t kMinPartSize = 5ull << 20;

}  // namespace

MultipartUpload::MultipartUpload(S3Client& c, std::string full, std::optional<std::uint64_t> announced_size)
    : c_(c), full_(std::move(full)), announced_size_(announced_size) {}

std::uint64_t MultipartUpload::part_size(int number) const {
  // Double every 2000 parts so an object of unknown size stays within S3's 10000 parts.
  int shift = std::min((number - 1) / 2000, 4);
  std::uint64_t base = std::max(c_.options().part_size, kMinPartSize);
  if (announced_size_) base = std::max(base, (*announced_size_ + 9000) / 9000);
  return base << shift;
}

void MultipartUpload::start() {
  std::string body;
  Call call = make_collecting_call("create-multipart", "POST", full_, &body);
  call.query = {{"uploads", ""}};
  call.check = [&](const HttpResponse&) {
    if (s3xml::text(body, "UploadId").empty()) throw RetryRequest{"create-multipart: no UploadId"};
  };
  auto r = c_.execute(call);
  if (r.status != 200) c_.fail(r, call);
  upload_id_ = s3xml::text(body, "UploadId");
  workers_.start_n(static_cast<std::size_t>(std::max(1, c_.options().upload_parallel)), [this] { work(); });
}

void MultipartUpload::send(Bytes data) {
  Part p{next_part_++, std::move(data)};
  std::unique_lock lock(mu_);
  const auto room = static_cast<std::size_t>(std::max(1, c_.options().upload_parallel));
  cv_.wait(lock, [&] { return queue_.size() < room || error_; });
  if (error_) std::rethrow_exception(error_);
  queue_.push_back(std::move(p));
  cv_.notify_all();
}

// A worker: takes parts until the queue is closed and empty, the upload is cancelled, or a part fails
// (the first failure is kept; the others stop at their next part).
void MultipartUpload::work() {
  while (true) {
    Part p;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || closing_ || cancel_; });
      if (cancel_ || error_ || queue_.empty()) return;
      p = std::move(queue_.front());
      queue_.pop_front();
      cv_.notify_all();
    }
    try {
      upload_part(p);
    } catch (...) {
      std::lock_guard lock(mu_);
      if (!error_) error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
  }
}

void MultipartUpload::upload_part(const Part& p) {
  Call call = make_call("upload-part", "PUT", full_);
  call.query = {{"partNumber", std::to_string(p.number)}, {"uploadId", upload_id_}};
  call.body = p.data;
  call.headers = {{"content-md5", sigv4::md5_base64(call.body)}};
  call.cancel = &cancel_;
  call.check = [&](const HttpResponse& r) {
    if (r.header("etag").empty()) throw RetryRequest{"upload-part: no ETag"};
  };
  auto r = c_.execute(call);
  if (r.status != 200) c_.fail(r, call);
  std::lock_guard lock(mu_);
  done_parts_[p.number] = Done{r.header("etag"), sigv4::md5_raw(p.data)};
}

// The ThreadGroup's stop: a worker could not be started, the ones running end at their next part.
void MultipartUpload::stop_workers() noexcept {
  std::lock_guard lock(mu_);
  cancel_ = true;
  cv_.notify_all();
}

void MultipartUpload::finish_workers() noexcept {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    cv_.notify_all();
  }
  workers_.join();
}

void MultipartUpload::abort() noexcept {
  cancel_ = true;
  try {
    finish_workers();
    if (upload_id_.empty()) return;
    Call call = make_call("abort-multipart", "DELETE", full_);
    call.query = {{"uploadId", upload_id_}};
    upload_id_.clear();
    auto r = c_.execute(call);
    if (r.status >= 300 && r.status != 404) {
      spdlog::warn("s3 abort multipart upload of {}: HTTP {}", c_.where(full_), r.status);
    }
  } catch (const std::exception& e) {
    spdlog::warn("s3 abort multipart upload of {}: {}", c_.where(full_), e.what());
  }
}

// The CompleteMultipartUpload body, every part in order; *expected_etag: the multipart ETag of our
// bytes (MD5 of the part MD5s, "-", part count).
std::string MultipartUpload::complete_xml(std::string* expected_etag) const {
  const int parts = next_part_ - 1;
  if (static_cast<int>(done_parts_.size()) != parts) {
    throw Error(ErrorKind::Internal, "s3 put " + c_.where(full_) + ": missing parts");
  }
  std::string xml = "<CompleteMultipartUpload>";
  std::string md5s;
  for (const auto& [num, d] : done_parts_) {
    xml += "<Part><PartNumber>" + std::to_string(num) + "</PartNumber><ETag>" + s3xml::escape(d.etag) +
           "</ETag></Part>";
    md5s += d.md5;
  }
  xml += "</CompleteMultipartUpload>";
  *expected_etag = sigv4::md5_hex(as_bytes(md5s)) + "-" + std::to_string(parts);
  return xml;
}

void MultipartUpload::complete(bool if_absent, const OwnTail& tail, DeferredConfirms* confirm_later) {
  finish_workers();
  {
    std::lock_guard lock(mu_);
    if (error_) std::rethrow_exception(error_);
  }
  std::string expected_etag;
  const std::string xml = complete_xml(&expected_etag);
  if (if_absent) check_absent(c_, full_);
  std::string body;
  int attempts = 0;
  Call call = make_collecting_call("complete-multipart", "POST", full_, &body);
  call.query = {{"uploadId", upload_id_}};
  call.body = as_bytes(xml);
  call.headers = {{"content-md5", sigv4::md5_base64(call.body)}, {"content-type", "application/xml"}};
  auto collect = call.reset;
  call.reset = [&attempts, collect] {
    collect();
    ++attempts;
  };
  call.check = [&](const HttpResponse&) {
    // S3 may answer 200 and report an error in the body, even after streaming whitespace.
    if (s3xml::has(body, "Error")) {
      std::string code = s3xml::text(body, "Code");
      if (code == "InternalError" || code == "SlowDown" || code == "ServiceUnavailable") {
        throw RetryRequest{"complete-multipart: " + code};
      }
    } else if (!s3xml::has(body, "CompleteMultipartUploadResult")) {
      throw RetryRequest{"complete-multipart: incomplete answer"};
    }
  };
  Clock::time_point started;
  auto r = send_complete(call, if_absent, &started);
  if (!accept_complete(r, body, call, attempts, expected_etag)) c_.fail(r, call);
  upload_id_.clear();
  // Only a store seen honouring If-None-Match is trusted with it here: Swift's s3api ignores it on
  // CompleteMultipartUpload (and refuses it with 501 only on PUT).
  if (if_absent && c_.cond_writes().get() != s3caps::Cond::Supported) {
    confirm_ours_or_defer(c_, full_, expected_etag, Clock::now() - started, &tail, confirm_later);
  }
}

// The complete request, with `If-None-Match: *` unless the store is known to refuse it; a 501 to the
// condition is remembered and the request sent again without it, after one more HEAD.
HttpResponse MultipartUpload::send_complete(Call& call, bool if_absent, Clock::time_point* started) {
  const bool cond = if_absent && c_.cond_writes().get() != s3caps::Cond::Unsupported;
  if (cond) call.headers.emplace_back("if-none-match", "*");
  *started = Clock::now();
  auto r = c_.execute(call);
  if (cond && not_implemented(r)) {
    c_.cond_writes().learned(s3caps::Cond::Unsupported);
    call.headers.pop_back();
    check_absent(c_, full_);
    *started = Clock::now();
    r = c_.execute(call);
  }
  return r;
}

// True when the upload is stored as ours. Throws for an error inside a 200 and for 412 (Duplicate);
// false for any other failure (the caller throws it).
bool MultipartUpload::accept_complete(const HttpResponse& r, const std::string& body, const Call& call,
                                      int attempts, const std::string& expected_etag) {
  if (r.status == 200 && s3xml::has(body, "Error")) {
    HttpResponse fake = r;
    fake.status = 500;
    fake.error_body = body;
    c_.fail(fake, call);
  }
  if (r.status == 200) return true;
  if (r.status == 404 && attempts > 1) {
    // An earlier attempt may have completed the upload and lost its answer: accept the object only
    // if it is exactly ours (multipart ETag = MD5 of the part MD5s, "-", part count).
    auto h = c_.head_raw(full_);
    if (h && etag_value(h->header("etag")) == expected_etag) return true;
  }
  if (r.status == 412) throw_exists(c_, full_);
  return false;
}

}  // namespace pgvault::s3
