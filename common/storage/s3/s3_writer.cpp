#include "common/storage/s3/s3_writer.h"

#include <algorithm>

#include "common/base/errors.h"
#include "common/storage/s3/s3_conditional.h"
#include "common/storage/s3/s3_multipart.h"
#include "common/storage/s3/s3_spool.h"

namespace pgvault::s3 {
namespace {

class S3Writer final : public ObjectWriter {
 public:
  S3Writer(S3Client& c, std::string full, PutOptions opts);
  ~S3Writer() override {
    if (!done_) abort();
  }

  void write(ByteView data) override;
  void commit() override;
  void abort() noexcept override;

 private:
  bool spooling() const { return spool_ != nullptr && spool_->active(); }
  void unspool();
  void keep_tail(ByteView d);
  void start_multipart();
  void dispatch(std::size_t n);
  void put_single();

  S3Client& c_;
  const S3Options& o_;
  std::string full_;
  PutOptions opts_;
  Bytes buf_;
  std::unique_ptr<UploadSpool> spool_;  // a single-PUT body spooled here (see the constructor)
  std::uint64_t total_ = 0;
  Bytes tail_;  // the last kTailCheck bytes written (see confirm_ours)
  bool done_ = false;
  std::unique_ptr<MultipartUpload> multipart_;
};

// An object announced small enough for one PUT (a WAL segment) is spooled to an unnamed temporary
// file, hashed as it arrives, and sent from there: memory stays flat however many uploads run at once
// (look-ahead pushes four). Without a usable temporary directory it is buffered in memory, in one
// allocation (growing by doubling would briefly hold two copies).
S3Writer::S3Writer(S3Client& c, std::string full, PutOptions opts)
    : c_(c), o_(c.options()), full_(std::move(full)), opts_(opts) {
  if (opts_.size && *opts_.size <= o_.multipart_threshold) {
    spool_ = std::make_unique<UploadSpool>(o_.spill_dir);
    if (!spool_->active()) {
      spool_.reset();
      buf_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*opts_.size + (64 << 10), o_.multipart_threshold + 1)));
    }
  }
}

void S3Writer::write(ByteView data) {
  if (done_) throw Error(ErrorKind::Internal, "s3 put " + c_.where(full_) + ": write after commit/abort");
  total_ += data.size();
  keep_tail(data);
  if (spooling()) {
    if (total_ <= o_.multipart_threshold && spool_->append(data)) return;
    unspool();  // larger than announced, or the temporary file failed: go on in memory
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
  if (!multipart_ && (buf_.size() > o_.multipart_threshold ||
                      (opts_.size && *opts_.size > o_.multipart_threshold))) {
    start_multipart();
  }
  if (multipart_) {
    while (buf_.size() >= multipart_->next_part_size()) dispatch(multipart_->next_part_size());
  }
}

void S3Writer::commit() {
  if (done_) throw Error(ErrorKind::Internal, "s3 put " + c_.where(full_) + ": commit twice");
  try {
    if (!multipart_) {
      put_single();
    } else {
      if (!buf_.empty()) dispatch(buf_.size());
      multipart_->complete(opts_.if_absent, OwnTail{total_, &tail_}, opts_.confirm_later);
    }
    done_ = true;
  } catch (...) {
    abort();
    throw;
  }
}

void S3Writer::abort() noexcept {
  done_ = true;
  if (multipart_) multipart_->abort();
  buf_.clear();
  buf_.shrink_to_fit();
  spool_.reset();
}

// Back to buffering in memory: what was spooled is read into buf_.
void S3Writer::unspool() {
  buf_ = spool_->take_back("s3 put " + c_.where(full_));
  spool_.reset();
}

void S3Writer::keep_tail(ByteView d) {
  if (d.size() >= kTailCheck) {
    tail_.assign(d.end() - kTailCheck, d.end());
    return;
  }
  tail_.insert(tail_.end(), d.begin(), d.end());
  if (tail_.size() > kTailCheck) tail_.erase(tail_.begin(), tail_.end() - kTailCheck);
}

void S3Writer::start_multipart() {
  if (opts_.if_absent) check_absent(c_, full_);
  auto upload = std::make_unique<MultipartUpload>(c_, full_, opts_.size);
  upload->start();
  multipart_ = std::move(upload);
}

void S3Writer::dispatch(std::size_t n) {
  Bytes part(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
  multipart_->send(std::move(part));
}

// One PUT (from the spool file or the memory buffer) with Content-MD5; create-if-absent as
// s3_conditional.h says.
void S3Writer::put_single() {
  if (opts_.if_absent) check_absent(c_, full_);
  Call call = make_call("put", "PUT", full_);
  std::string md5, md5_hex;
  if (spooling()) {
    spool_->finish();
    call.body_fd = spool_->fd();
    call.body_size = spool_->size();
    call.payload_hash = spool_->digests().sha256_hex();
    md5 = spool_->digests().md5_base64();
    md5_hex = spool_->digests().md5_hex();
  } else {
    call.body = buf_;
    md5 = sigv4::md5_base64(call.body);
    md5_hex = sigv4::md5_hex(buf_);
  }
  call.headers = {{"content-md5", md5}};
  int attempts = 0;
  call.reset = [&] { ++attempts; };
  if (opts_.if_absent && c_.cond_writes().get() != s3caps::Cond::Unsupported) {
    if (put_conditional(c_, full_, call, md5_hex, attempts)) return;
    check_absent(c_, full_);  // the store refused the condition: check again, right before the upload
  }
  const auto started = Clock::now();
  auto r = c_.execute(call);
  if (r.status < 200 || r.status >= 300) c_.fail(r, call);
  if (opts_.if_absent) confirm_ours_or_defer(c_, full_, md5_hex, Clock::now() - started, nullptr, opts_.confirm_later);
}

}  // namespace

std::unique_ptr<ObjectWriter> open_writer(S3Client& client, std::string full, const PutOptions& opts) {
  return std::make_unique<S3Writer>(client, std::move(full), opts);
}

}  // namespace pgvault::s3
