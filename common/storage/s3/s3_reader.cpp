#include "common/storage/s3/s3_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/base/errors.h"
#include "common/storage/s3/s3_parse.h"

namespace pgvault::s3 {
namespace {

// What a ranged GET reserves before its first byte arrives (see S3Reader::fetch).
constexpr std::uint64_t kFirstReserve = 1 << 20;

[[noreturn]] void throw_not_found(const S3Client& c, const std::string& full) {
  throw Error(ErrorKind::NotFound, "s3 get " + c.where(full) + ": not found");
}

class S3Reader final : public Source {
 public:
  S3Reader(S3Client& c, std::string full, std::optional<ByteRange> range) : c_(c), full_(std::move(full)) {
    if (range) {
      pos_ = range->offset;
      if (range->length) end_ = range->offset + *range->length;
    }
    fetch(true);
  }

  std::size_t read(std::span<std::uint8_t> buf) override {
    while (chunk_pos_ == chunk_.size()) {
      if (eof_) return 0;
      fetch(false);
    }
    std::size_t n = std::min(buf.size(), chunk_.size() - chunk_pos_);
    std::memcpy(buf.data(), chunk_.data() + chunk_pos_, n);
    chunk_pos_ += n;
    return n;
  }

 private:
  void fetch(bool first);
  Call range_call(std::uint64_t want, std::uint64_t* total);
  void check_answer(const HttpResponse& r, std::uint64_t* total) const;
  void take_chunk(const HttpResponse& r, std::uint64_t total);
  bool past_end(const HttpResponse& r, const Call& call);

  S3Client& c_;
  std::string full_;
  std::uint64_t pos_ = 0;
  std::optional<std::uint64_t> end_;
  std::string etag_;
  Bytes chunk_;
  std::size_t chunk_pos_ = 0;
  bool eof_ = false;
};

// The next chunk: [pos_, pos_ + want), at most get_chunk_size bytes, pinned to the first ETag.
void S3Reader::fetch(bool first) {
  chunk_.clear();
  chunk_pos_ = 0;
  if (end_ && pos_ >= *end_) {
    if (first && !c_.head_raw(full_)) throw_not_found(c_, full_);  // zero-length range: still report a missing object
    eof_ = true;
    return;
  }
  std::uint64_t want = c_.options().get_chunk_size;
  if (end_) want = std::min(want, *end_ - pos_);
  std::uint64_t total = 0;
  Call call = range_call(want, &total);
  // Up to 1 MiB at first (most objects read whole are small: a 16 MiB segment compresses to 1-5 MiB,
  // metadata to kilobytes), then room for the rest in one step once more arrives (see range_call).
  chunk_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(want, kFirstReserve)));
  auto r = c_.execute(call);
  if (r.status == 206 || r.status == 200) return take_chunk(r, total);
  if (r.status == 416 && past_end(r, call)) return;
  if (!first && (r.status == 404 || r.status == 412)) {
    throw Error(ErrorKind::Transient, "s3 get " + c_.where(full_) + ": object changed or vanished while reading (HTTP " +
                                          std::to_string(r.status) + ")");
  }
  c_.fail(r, call);
}

Call S3Reader::range_call(std::uint64_t want, std::uint64_t* total) {
  const std::uint64_t last = pos_ + want - 1;
  Call call = make_call("get", "GET", full_);
  call.headers = {{"range", "bytes=" + std::to_string(pos_) + "-" + std::to_string(last)}};
  if (!etag_.empty()) call.headers.emplace_back("if-match", etag_);
  call.reset = [this] { chunk_.clear(); };
  call.on_body = [this, want](ByteView b) {
    if (chunk_.size() + b.size() > want) {
      throw Error(ErrorKind::Internal, "s3 get " + c_.where(full_) + ": server sent more than the range asked");
    }
    if (chunk_.size() + b.size() > chunk_.capacity()) chunk_.reserve(static_cast<std::size_t>(want));
    chunk_.insert(chunk_.end(), b.begin(), b.end());
  };
  call.check = [this, total](const HttpResponse& r) { check_answer(r, total); };
  return call;
}

// A 2xx answer must hold exactly the bytes it announces, at pos_; a truncated one is retried.
void S3Reader::check_answer(const HttpResponse& r, std::uint64_t* total) const {
  bool ok = false;
  std::uint64_t len = parse_u64(r.header("content-length"), &ok);
  if (ok && len != chunk_.size()) {
    throw RetryRequest{"get: body of " + std::to_string(chunk_.size()) + " bytes, content-length " +
                       std::to_string(len)};
  }
  if (r.status == 206) {
    // Content-Range: bytes a-b/total
    std::string cr = r.header("content-range");
    unsigned long long a = 0, b = 0, t = 0;
    if (std::sscanf(cr.c_str(), "bytes %llu-%llu/%llu", &a, &b, &t) != 3 || a != pos_ || b < a ||
        b - a + 1 != chunk_.size()) {
      throw RetryRequest{"get: content-range '" + cr + "' does not match " + std::to_string(chunk_.size()) +
                         " bytes at " + std::to_string(pos_)};
    }
    *total = t;
  } else if (r.status == 200) {
    if (pos_ != 0) throw RetryRequest{"get: server ignored the range"};
    *total = chunk_.size();
  } else {
    throw RetryRequest{"get: unexpected HTTP " + std::to_string(r.status)};
  }
}

void S3Reader::take_chunk(const HttpResponse& r, std::uint64_t total) {
  if (etag_.empty()) etag_ = r.header("etag");
  end_ = end_ ? std::min(*end_, total) : total;
  pos_ += chunk_.size();
  if (pos_ >= *end_) eof_ = true;
  if (chunk_.empty() && !eof_) {
    throw Error(ErrorKind::Transient, "s3 get " + c_.where(full_) + ": empty body before the end");
  }
}

// 416: the range starts at or beyond the end (an empty object answers this too). True when that is
// the end of the object; throws when the object is missing or the 416 is not explained.
bool S3Reader::past_end(const HttpResponse& r, const Call& call) {
  auto h = c_.head_raw(full_);
  if (!h) throw_not_found(c_, full_);
  bool ok = false;
  std::uint64_t size = parse_u64(h->header("content-length"), &ok);
  if (ok && pos_ >= size) {
    end_ = pos_;
    eof_ = true;
    return true;
  }
  c_.fail(r, call);
}

ObjectTail size_only(S3Client& c, const std::string& full) {
  auto h = c.head_raw(full);
  if (!h) throw_not_found(c, full);
  bool ok = false;
  ObjectTail t{{}, parse_u64(h->header("content-length"), &ok)};
  if (!ok) throw Error(ErrorKind::Transient, "s3 head " + c.where(full) + ": no content-length");
  return t;
}

// The suffix-range answer must be the last n bytes (or the whole object when shorter).
void check_tail(const HttpResponse& r, std::size_t n, std::uint64_t received, ObjectTail* tail) {
  bool ok = false;
  std::uint64_t len = parse_u64(r.header("content-length"), &ok);
  if (ok && len != received) {
    throw RetryRequest{"get: body of " + std::to_string(received) + " bytes, content-length " + std::to_string(len)};
  }
  if (r.status == 200) {
    tail->size = received;
    return;
  }
  auto cr = parse_content_range(r.header("content-range"));
  if (r.status != 206 || !cr || cr->unsatisfied || cr->last + 1 != cr->total ||
      cr->total - cr->first != std::min<std::uint64_t>(n, cr->total) || cr->last - cr->first + 1 != received) {
    throw RetryRequest{"get: content-range '" + r.header("content-range") + "' does not answer the last " +
                       std::to_string(n) + " bytes with " + std::to_string(received)};
  }
  tail->size = cr->total;
}

}  // namespace

std::unique_ptr<Source> open_reader(S3Client& client, std::string full, std::optional<ByteRange> range) {
  return std::make_unique<S3Reader>(client, std::move(full), range);
}

// One suffix-range GET: the size comes from the same answer as the bytes (Content-Range ".../total").
ObjectTail read_tail(S3Client& c, const std::string& full, std::size_t n) {
  if (n == 0) return size_only(c, full);  // no byte to ask for: the size alone
  ObjectTail tail;
  std::uint64_t received = 0;
  Call call = make_call("get", "GET", full);
  call.headers = {{"range", "bytes=-" + std::to_string(n)}};
  call.reset = [&] {
    tail = ObjectTail{};
    received = 0;
  };
  call.on_body = [&](ByteView b) {  // keeps the last n bytes, also of a server that ignored the range
    received += b.size();
    tail.bytes.insert(tail.bytes.end(), b.begin(), b.end());
    if (tail.bytes.size() > n) tail.bytes.erase(tail.bytes.begin(), tail.bytes.end() - static_cast<std::ptrdiff_t>(n));
  };
  call.check = [&](const HttpResponse& r) { check_tail(r, n, received, &tail); };
  auto r = c.execute(call);
  if (r.status == 200 || r.status == 206) return tail;
  if (r.status == 416) {  // an empty object has no last byte; "bytes */0" says so
    auto cr = parse_content_range(r.header("content-range"));
    if (cr && cr->unsatisfied && cr->total == 0) return ObjectTail{};
    auto h = c.head_raw(full);
    if (!h) throw_not_found(c, full);
    if (h->header("content-length") == "0") return ObjectTail{};
  }
  c.fail(r, call);
}

}  // namespace pgvault::s3
