#include "common/storage/s3/s3.h"

#include "common/storage/s3/curl_api.h"
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include <openssl/evp.h>

#include "common/base/errors.h"
#include "common/base/text.h"
#include "common/base/time.h"
#include "common/storage/s3/http.h"
#include "common/storage/s3/s3_xml.h"
#include "common/storage/s3/sigv4.h"

namespace pgvault {
namespace {

using Clock = std::chrono::steady_clock;
using sigv4::Pairs;

constexpr std::uint64_t kMinPartSize = 5ull << 20;
constexpr int kMaxDeleteBatch = 1000;

// Thrown by a response check to ask for another attempt (truncated body, error inside a 200...).
struct RetryRequest {
  std::string why;
};

struct Endpoint {
  std::string scheme;  // "http" or "https"
  std::string host;    // as written, without port ("[::1]" keeps its brackets)
  std::string port;    // "" when not written
  std::string id() const { return scheme + "://" + host + (port.empty() ? "" : ":" + port); }
};

Endpoint parse_endpoint(const std::string& endpoint, const std::string& region) {
  std::string e = endpoint.empty() ? "https://s3." + region + ".amazonaws.com" : endpoint;
  Endpoint ep;
  std::string rest;
  if (e.starts_with("https://")) {
    ep.scheme = "https";
    rest = e.substr(8);
  } else if (e.starts_with("http://")) {
    ep.scheme = "http";
    rest = e.substr(7);
  } else {
    throw Error(ErrorKind::Config, "s3 endpoint '" + e + "' must start with https:// (or http://)");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string::npos) {
    throw Error(ErrorKind::Config, "s3 endpoint '" + e + "' must be scheme://host[:port] without a path");
  }
  std::size_t colon = rest.rfind(':');
  std::size_t bracket = rest.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    ep.host = rest.substr(0, colon);
    ep.port = rest.substr(colon + 1);
    if (ep.port.empty() || ep.port.find_first_not_of("0123456789") != std::string::npos) {
      throw Error(ErrorKind::Config, "s3 endpoint '" + e + "' has a bad port");
    }
  } else {
    ep.host = rest;
  }
  return ep;
}

std::uint64_t parse_u64(const std::string& s, bool* ok) {
  std::uint64_t v = 0;
  *ok = !s.empty() && s.size() <= 19 && s.find_first_not_of("0123456789") == std::string::npos;
  if (*ok) v = std::stoull(s);
  return v;
}

std::string md5_raw(ByteView data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_md5(), nullptr);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// The store does not implement what the request asked (Swift's s3api on a conditional PUT).
bool not_implemented(const HttpResponse& r) {
  return r.status == 501 || s3xml::text(r.error_body, "Code") == "NotImplemented";
}

bool retryable_curl(int code) {
  switch (static_cast<CURLcode>(code)) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_READ_ERROR:
      return true;
    default:
      return false;
  }
}

bool retryable_http(long status, const std::string& code) {
  if ((status >= 500 && status != 501) || status == 429 || status == 408) return true;  // 501: NotImplemented
  // S3 reports these as 400: the connection idled too long, or the body arrived altered.
  if (status == 400 && (code == "RequestTimeout" || code == "BadDigest" ||
                        code == "XAmzContentSHA256Mismatch" || code == "InvalidDigest")) {
    return true;
  }
  return false;
}

class S3Storage;

// One HTTP exchange of the S3 API, with what it needs to be retried.
struct Call {
  std::string op;       // for messages: "put", "get", "list"...
  std::string method;
  std::string key;      // full key inside the bucket; "" for bucket-level requests
  Pairs query;
  Pairs headers;        // extra signed headers
  ByteView body;
  int body_fd = -1;          // or the body read from this file (see HttpRequest); payload_hash then required
  std::uint64_t body_size = 0;
  std::string payload_hash;  // computed from body when empty
  std::function<void()> reset;                    // before every attempt (drop a partial body)
  std::function<void(ByteView)> on_body;          // 2xx body
  std::function<void(const HttpResponse&)> check; // after a 2xx: may throw RetryRequest
  const std::atomic<bool>* cancel = nullptr;
  bool expect_continue = false;  // see HttpRequest
};

Call make_call(std::string op, std::string method, std::string key) {
  Call c;
  c.op = std::move(op);
  c.method = std::move(method);
  c.key = std::move(key);
  return c;
}

class S3Storage final : public Storage {
 public:
  explicit S3Storage(const S3Options& o);

  std::string describe() const override {
    return "s3://" + opt_.bucket + (prefix_.empty() ? "" : "/" + prefix_.substr(0, prefix_.size() - 1));
  }
  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override;
  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override;
  ObjectTail get_tail(const std::string& key, std::size_t n) override { return tail_of(full_key(key), n); }
  ObjectTail tail_of(const std::string& full, std::size_t n);
  std::optional<ObjectInfo> head(const std::string& key) override;
  std::vector<ObjectInfo> list(const std::string& prefix) override;
  void remove(const std::string& key) override;
  void remove_many(const std::vector<std::string>& keys) override;

  // Internals shared with the writer and reader.
  const S3Options& options() const { return opt_; }
  std::string full_key(const std::string& key) const { return prefix_ + key; }
  HttpClientPool& pool() { return pool_; }
  HttpResponse execute(HttpClient& client, const Call& call);
  std::optional<HttpResponse> head_raw(HttpClient& client, const std::string& full);
  [[noreturn]] void fail(const HttpResponse& r, const Call& call) const;
  std::string where(const std::string& full) const { return "s3://" + opt_.bucket + "/" + full; }
  // What is known of the store's conditional writes: loaded once per process from the capability file,
  // then shared by every thread; learned() records a new answer (and writes it to the file).
  s3caps::Cond cond_writes();
  void learned(s3caps::Cond cond);

 private:
  HttpResponse attempt(HttpClient& client, const Call& call);
  std::string url_and_path(const Call& call, std::string* host, std::string* path) const;

  S3Options opt_;
  Endpoint ep_;
  std::string prefix_;
  HttpClientPool pool_;
  std::atomic<bool> no_delete_objects_{false};
  std::once_flag cond_once_;
  std::atomic<s3caps::Cond> cond_{s3caps::Cond::Unknown};
  std::string cap_file_;
};

HttpSettings http_settings(const S3Options& o) {
  HttpSettings s;
  s.connect_timeout_s = o.connect_timeout_s;
  s.low_speed_limit = o.low_speed_limit;
  s.low_speed_time_s = o.low_speed_time_s;
  s.request_timeout_s = o.request_timeout_s;
  s.verify_tls = o.verify_tls;
  s.ca_file = o.ca_file;
  return s;
}

S3Storage::S3Storage(const S3Options& o)
    : opt_(o), ep_(parse_endpoint(o.endpoint, o.region)), pool_(http_settings(o)) {
  prefix_ = o.prefix;
  while (!prefix_.empty() && prefix_.front() == '/') prefix_.erase(prefix_.begin());
  if (!prefix_.empty() && prefix_.back() != '/') prefix_ += '/';
}

std::string S3Storage::url_and_path(const Call& call, std::string* host, std::string* path) const {
  std::string h = ep_.host;
  if (opt_.uri_style == "virtual") {
    h = opt_.bucket + "." + h;
    *path = "/" + call.key;
  } else {
    *path = "/" + opt_.bucket + (call.key.empty() ? "" : "/" + call.key);
  }
  *host = ep_.port.empty() ? h : h + ":" + ep_.port;
  std::string url = ep_.scheme + "://" + *host + sigv4::uri_encode(*path, true);
  if (!call.query.empty()) url += "?" + sigv4::canonical_query(call.query);
  return url;
}

HttpResponse S3Storage::attempt(HttpClient& client, const Call& call) {
  std::string host, path;
  HttpRequest req;
  req.method = call.method;
  req.url = url_and_path(call, &host, &path);
  req.body = call.body;
  req.body_fd = call.body_fd;
  req.body_size = call.body_size;
  req.cancel = call.cancel;
  req.expect_continue = call.expect_continue;
  const std::string date = sigv4::amz_date_now();
  sigv4::Request sr;
  sr.method = call.method;
  sr.path = path;
  sr.query = call.query;
  if (call.body_fd >= 0 && call.payload_hash.empty()) throw Error(ErrorKind::Internal, "s3: file body without a payload hash");
  sr.payload_hash = call.payload_hash.empty() ? sigv4::sha256_hex(call.body) : call.payload_hash;
  sr.headers = {{"host", host}, {"x-amz-date", date}, {"x-amz-content-sha256", sr.payload_hash}};
  if (!opt_.session_token.empty()) sr.headers.emplace_back("x-amz-security-token", opt_.session_token);
  for (const auto& h : call.headers) sr.headers.push_back(h);
  sigv4::Credentials creds{opt_.access_key_id, opt_.secret_access_key, opt_.session_token};
  auto s = sigv4::sign(sr, creds, opt_.region, "s3", date);
  req.headers = sr.headers;
  req.headers.emplace_back("authorization", s.authorization);
  if (call.reset) call.reset();
  return client.perform(req, call.on_body);
}

HttpResponse S3Storage::execute(HttpClient& client, const Call& call) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(opt_.total_timeout_s);
  std::string last;
  int attempts = 0;
  for (int n = 0;; ++n) {
    if (n > 0) {
      double cap = std::min<double>(opt_.retry_max_delay_ms, opt_.retry_base_ms * std::pow(2.0, n - 1));
      auto delay = std::chrono::milliseconds(
          static_cast<long>(std::uniform_real_distribution<double>(0, std::max(cap, 1.0))(rng)));
      if (n > opt_.max_retries || Clock::now() + delay >= deadline) break;
      if (call.cancel != nullptr && call.cancel->load()) break;
      std::this_thread::sleep_for(delay);
    }
    ++attempts;
    HttpResponse r;
    try {
      r = attempt(client, call);
    } catch (const RetryRequest& e) {  // thrown by on_body
      last = e.why;
      continue;
    }
    if (r.curl_code != CURLE_OK) {
      last = "curl: " + r.curl_error;
      spdlog::debug("s3 {} {} {}: attempt {}: {}", call.method, opt_.bucket, call.key, attempts, last);
      if (call.cancel != nullptr && call.cancel->load()) {
        throw Error(ErrorKind::Interrupted, "s3 " + call.op + " " + where(call.key) + ": cancelled");
      }
      if (r.curl_code == CURLE_PEER_FAILED_VERIFICATION || r.curl_code == CURLE_SSL_CACERT_BADFILE ||
          r.curl_code == CURLE_SSL_CERTPROBLEM) {
        throw Error(ErrorKind::Config, "s3 " + call.op + " " + where(call.key) + ": tls: " + r.curl_error);
      }
      if (!retryable_curl(r.curl_code)) {
        throw Error(ErrorKind::Transient, "s3 " + call.op + " " + where(call.key) + ": " + last);
      }
      continue;
    }
    std::string code = s3xml::text(r.error_body, "Code");
    spdlog::debug("s3 {} {} {}: attempt {}: HTTP {} {}", call.method, opt_.bucket, call.key, attempts,
                  r.status, code);
    if (r.status >= 200 && r.status < 300) {
      try {
        if (call.check) call.check(r);
      } catch (const RetryRequest& e) {
        last = e.why;
        continue;
      }
      return r;
    }
    if (retryable_http(r.status, code)) {
      last = "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code);
      continue;
    }
    return r;
  }
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
  throw Error(ErrorKind::Transient, "s3 " + call.op + " " + where(call.key) + ": giving up after " +
                                        std::to_string(attempts) + " attempts in " + std::to_string(secs) +
                                        " s: " + last);
}

void S3Storage::fail(const HttpResponse& r, const Call& call) const {
  std::string code = s3xml::text(r.error_body, "Code");
  std::string message = s3xml::text(r.error_body, "Message");
  ErrorKind kind = ErrorKind::Internal;
  std::string hint;
  switch (r.status) {
    case 401:
    case 403:
      kind = ErrorKind::Auth;
      if (code == "SignatureDoesNotMatch") hint = " (check secret_access_key)";
      else if (code == "InvalidAccessKeyId") hint = " (check access_key_id)";
      else if (code == "RequestTimeTooSkewed") hint = " (check the system clock)";
      break;
    case 404:
      kind = code == "NoSuchBucket" ? ErrorKind::Config : ErrorKind::NotFound;
      break;
    case 301:
    case 307:
    case 400:
      kind = (r.status != 400 || code == "AuthorizationHeaderMalformed" || code == "InvalidBucketName" ||
              code == "InvalidRegion")
                 ? ErrorKind::Config
                 : ErrorKind::Internal;
      if (r.status != 400) hint = " (check region and endpoint)";
      break;
    case 409:
      kind = ErrorKind::Conflict;
      break;
    case 412:
      kind = ErrorKind::Duplicate;
      break;
    default:
      kind = r.status >= 500 ? ErrorKind::Transient : ErrorKind::Internal;
  }
  std::string msg = "s3 " + call.op + " " + where(call.key) + ": HTTP " + std::to_string(r.status);
  if (!code.empty()) msg += " " + code;
  if (!message.empty()) msg += ": " + message;
  throw Error(kind, msg + hint);
}

std::optional<HttpResponse> S3Storage::head_raw(HttpClient& client, const std::string& full) {
  Call call = make_call("head", "HEAD", full);
  auto r = execute(client, call);
  if (r.status == 404) return std::nullopt;
  if (r.status < 200 || r.status >= 300) fail(r, call);
  return r;
}

std::optional<ObjectInfo> S3Storage::head(const std::string& key) {
  auto client = pool_.acquire();
  auto r = head_raw(*client, full_key(key));
  if (!r) return std::nullopt;
  ObjectInfo info;
  info.key = key;
  bool ok = false;
  info.size = parse_u64(r->header("content-length"), &ok);
  if (!ok) throw Error(ErrorKind::Transient, "s3 head " + where(full_key(key)) + ": no content-length");
  std::string lm = r->header("last-modified");
  if (!lm.empty()) {
    std::time_t t = curl_api().getdate(lm.c_str(), nullptr);
    info.mtime = t > 0 ? t : 0;
  }
  return info;
}

s3caps::Cond S3Storage::cond_writes() {
  std::call_once(cond_once_, [&] {
    cap_file_ = opt_.capability_file == "none" ? ""
                : opt_.capability_file.empty() ? s3caps::default_file()
                                               : opt_.capability_file;
    if (!cap_file_.empty()) cond_ = s3caps::recall(cap_file_, ep_.id(), opt_.bucket, std::time(nullptr));
  });
  return cond_.load();
}

void S3Storage::learned(s3caps::Cond cond) {
  (void)cond_writes();  // the remembered answer first, so it cannot overwrite this newer one
  if (cond_.exchange(cond) == cond) return;
  if (cond == s3caps::Cond::Unsupported) {
    spdlog::info("{} does not support conditional writes: create-if-absent puts are checked after the upload",
                 ep_.id());
  }
  if (!cap_file_.empty()) s3caps::remember(cap_file_, ep_.id(), opt_.bucket, cond, std::time(nullptr));
}

// One suffix-range GET: the size comes from the same answer as the bytes (Content-Range ".../total").
ObjectTail S3Storage::tail_of(const std::string& full, std::size_t n) {
  if (n == 0) {  // no byte to ask for: the size alone
    auto client = pool_.acquire();
    auto h = head_raw(*client, full);
    if (!h) throw Error(ErrorKind::NotFound, "s3 get " + where(full) + ": not found");
    bool ok = false;
    ObjectTail t{{}, parse_u64(h->header("content-length"), &ok)};
    if (!ok) throw Error(ErrorKind::Transient, "s3 head " + where(full) + ": no content-length");
    return t;
  }
  auto client = pool_.acquire();
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
  call.check = [&](const HttpResponse& r) {
    bool ok = false;
    std::uint64_t len = parse_u64(r.header("content-length"), &ok);
    if (ok && len != received) {
      throw RetryRequest{"get: body of " + std::to_string(received) + " bytes, content-length " + std::to_string(len)};
    }
    if (r.status == 200) {
      tail.size = received;
      return;
    }
    auto cr = parse_content_range(r.header("content-range"));
    if (r.status != 206 || !cr || cr->unsatisfied || cr->last + 1 != cr->total ||
        cr->total - cr->first != std::min<std::uint64_t>(n, cr->total) || cr->last - cr->first + 1 != received) {
      throw RetryRequest{"get: content-range '" + r.header("content-range") + "' does not answer the last " +
                         std::to_string(n) + " bytes with " + std::to_string(received)};
    }
    tail.size = cr->total;
  };
  auto r = execute(*client, call);
  if (r.status == 200 || r.status == 206) return tail;
  if (r.status == 416) {  // an empty object has no last byte; "bytes */0" says so
    auto cr = parse_content_range(r.header("content-range"));
    if (cr && cr->unsatisfied && cr->total == 0) return ObjectTail{};
    auto h = head_raw(*client, full);
    if (!h) throw Error(ErrorKind::NotFound, "s3 get " + where(full) + ": not found");
    if (h->header("content-length") == "0") return ObjectTail{};
  }
  fail(r, call);
}

std::vector<ObjectInfo> S3Storage::list(const std::string& prefix) {
  auto client = pool_.acquire();
  std::vector<ObjectInfo> out;
  std::string token;
  const std::string full = full_key(prefix);
  for (int page = 0;; ++page) {
    std::string body;
    Call call = make_call("list", "GET", "");
    call.query = {{"list-type", "2"}, {"prefix", full}, {"encoding-type", "url"}};
    if (!token.empty()) call.query.emplace_back("continuation-token", token);
    call.reset = [&] { body.clear(); };
    call.on_body = [&](ByteView b) { body.append(reinterpret_cast<const char*>(b.data()), b.size()); };
    call.check = [&](const HttpResponse&) {
      if (!s3xml::has(body, "ListBucketResult")) throw RetryRequest{"list: incomplete ListBucketResult"};
    };
    auto r = execute(*client, call);
    if (r.status != 200) {
      call.key = full;
      fail(r, call);
    }
    const bool url_encoded = s3xml::text(body, "EncodingType") == "url";
    for (auto c : s3xml::elements(body, "Contents")) {
      std::string k = s3xml::text(c, "Key");
      if (url_encoded) k = s3xml::url_decode(k);
      if (!k.starts_with(prefix_)) continue;
      ObjectInfo info;
      info.key = k.substr(prefix_.size());
      bool ok = false;
      info.size = parse_u64(s3xml::text(c, "Size"), &ok);
      info.mtime = parse_iso8601_prefix(s3xml::text(c, "LastModified")).value_or(0);
      out.push_back(std::move(info));
    }
    if (s3xml::text(body, "IsTruncated") != "true") break;
    token = s3xml::text(body, "NextContinuationToken");
    if (token.empty()) {
      throw Error(ErrorKind::Internal, "s3 list " + where(full) + ": truncated listing without a token");
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return out;
}

void S3Storage::remove(const std::string& key) {
  auto client = pool_.acquire();
  Call call = make_call("delete", "DELETE", full_key(key));
  auto r = execute(*client, call);
  if (r.status == 404 || (r.status >= 200 && r.status < 300)) return;
  fail(r, call);
}

void S3Storage::remove_many(const std::vector<std::string>& keys) {
  for (std::size_t i = 0; i < keys.size(); i += kMaxDeleteBatch) {
    std::size_t end = std::min(keys.size(), i + kMaxDeleteBatch);
    if (no_delete_objects_.load()) {
      for (std::size_t k = i; k < end; ++k) remove(keys[k]);
      continue;
    }
    std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>";
    for (std::size_t k = i; k < end; ++k) xml += "<Object><Key>" + s3xml::escape(full_key(keys[k])) + "</Key></Object>";
    xml += "</Delete>";
    std::string body;
    Call call = make_call("delete-objects", "POST", "");
    call.query = {{"delete", ""}};
    call.body = as_bytes(xml);
    call.headers = {{"content-md5", sigv4::md5_base64(call.body)}, {"content-type", "application/xml"}};
    call.reset = [&] { body.clear(); };
    call.on_body = [&](ByteView b) { body.append(reinterpret_cast<const char*>(b.data()), b.size()); };
    call.check = [&](const HttpResponse&) {
      if (!s3xml::has(body, "DeleteResult")) throw RetryRequest{"delete: incomplete DeleteResult"};
    };
    HttpResponse r;
    {
      auto client = pool_.acquire();
      r = execute(*client, call);
    }
    if (r.status == 501 || s3xml::text(r.error_body, "Code") == "NotImplemented") {
      spdlog::debug("s3 {}: DeleteObjects not supported, deleting one by one", opt_.bucket);
      no_delete_objects_ = true;
      for (std::size_t k = i; k < end; ++k) remove(keys[k]);
      continue;
    }
    if (r.status != 200) fail(r, call);
    for (auto e : s3xml::elements(body, "Error")) {
      std::string code = s3xml::text(e, "Code");
      if (code == "NoSuchKey") continue;
      HttpResponse fake;
      fake.status = code == "AccessDenied" ? 403 : 500;
      fake.error_body = "<Error>" + std::string(e) + "</Error>";
      Call one = call;
      one.key = s3xml::text(e, "Key");
      fail(fake, one);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Reader: ranged GETs of get_chunk_size bytes.

class S3Reader final : public Source {
 public:
  S3Reader(S3Storage& s, std::string full, std::optional<ByteRange> range)
      : s_(s), full_(std::move(full)), client_(s.pool().acquire()) {
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
  void fetch(bool first) {
    chunk_.clear();
    chunk_pos_ = 0;
    if (end_ && pos_ >= *end_) {
      if (first) {  // zero-length range: still report a missing object
        if (!s_.head_raw(*client_, full_)) throw Error(ErrorKind::NotFound, "s3 get " + s_.where(full_) + ": not found");
      }
      eof_ = true;
      return;
    }
    std::uint64_t want = s_.options().get_chunk_size;
    if (end_) want = std::min(want, *end_ - pos_);
    const std::uint64_t last = pos_ + want - 1;
    std::uint64_t total = 0;
    Call call = make_call("get", "GET", full_);
    call.headers = {{"range", "bytes=" + std::to_string(pos_) + "-" + std::to_string(last)}};
    if (!etag_.empty()) call.headers.emplace_back("if-match", etag_);
    const std::uint64_t cap = want;
    call.reset = [&] { chunk_.clear(); };
    chunk_.reserve(want);  // one allocation: growing by doubling would briefly hold two copies
    call.on_body = [&](ByteView b) {
      if (chunk_.size() + b.size() > cap) {
        throw Error(ErrorKind::Internal, "s3 get " + s_.where(full_) + ": server sent more than the range asked");
      }
      chunk_.insert(chunk_.end(), b.begin(), b.end());
    };
    call.check = [&](const HttpResponse& r) {
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
        total = t;
      } else if (r.status == 200) {
        if (pos_ != 0) throw RetryRequest{"get: server ignored the range"};
        total = chunk_.size();
      } else {
        throw RetryRequest{"get: unexpected HTTP " + std::to_string(r.status)};
      }
    };
    auto r = s_.execute(*client_, call);
    if (r.status == 206 || r.status == 200) {
      if (etag_.empty()) etag_ = r.header("etag");
      end_ = end_ ? std::min(*end_, total) : total;
      pos_ += chunk_.size();
      if (pos_ >= *end_) eof_ = true;
      if (chunk_.empty() && !eof_) {
        throw Error(ErrorKind::Transient, "s3 get " + s_.where(full_) + ": empty body before the end");
      }
      return;
    }
    if (r.status == 416) {  // range starts at or beyond the end (an empty object answers this too)
      auto h = s_.head_raw(*client_, full_);
      if (!h) throw Error(ErrorKind::NotFound, "s3 get " + s_.where(full_) + ": not found");
      bool ok = false;
      std::uint64_t size = parse_u64(h->header("content-length"), &ok);
      if (ok && pos_ >= size) {
        end_ = pos_;
        eof_ = true;
        return;
      }
      s_.fail(r, call);
    }
    if (!first && (r.status == 404 || r.status == 412)) {
      throw Error(ErrorKind::Transient, "s3 get " + s_.where(full_) + ": object changed or vanished while reading (HTTP " +
                                            std::to_string(r.status) + ")");
    }
    s_.fail(r, call);
  }

  S3Storage& s_;
  std::string full_;
  HttpClientPool::Lease client_;
  std::uint64_t pos_ = 0;
  std::optional<std::uint64_t> end_;
  std::string etag_;
  Bytes chunk_;
  std::size_t chunk_pos_ = 0;
  bool eof_ = false;
};

std::unique_ptr<Source> S3Storage::get(const std::string& key, std::optional<ByteRange> range) {
  return std::make_unique<S3Reader>(*this, full_key(key), range);
}

// ---------------------------------------------------------------------------------------------------
// Writer: one PUT up to the threshold, multipart beyond.

class S3Writer final : public ObjectWriter {
 public:
  S3Writer(S3Storage& s, std::string full, PutOptions opts)
      : s_(s), o_(s.options()), full_(std::move(full)), opts_(opts) {
    // An object announced small enough for one PUT (a WAL segment) is spooled to an unnamed temporary
    // file, hashed as it arrives, and sent from there: memory stays flat however many uploads run at
    // once (look-ahead pushes four). Without a usable temporary directory it is buffered in memory, in
    // one allocation (growing by doubling would briefly hold two copies).
    if (opts_.size && *opts_.size <= o_.multipart_threshold) {
      spill_fd_ = open_spill_file(o_.spill_dir);
      if (spill_fd_ >= 0) {
        spill_digests_.emplace();
      } else {
        buf_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*opts_.size + (64 << 10), o_.multipart_threshold + 1)));
      }
    }
  }

  ~S3Writer() override {
    if (!done_) abort();
    close_spill();
  }

  void write(ByteView data) override {
    if (done_) throw Error(ErrorKind::Internal, "s3 put " + s_.where(full_) + ": write after commit/abort");
    total_ += data.size();
    keep_tail(data);
    if (spill_fd_ >= 0) {
      if (total_ <= o_.multipart_threshold && spill(data)) return;
      unspill();  // larger than announced, or the temporary file failed: go on in memory
    }
    buf_.insert(buf_.end(), data.begin(), data.end());
    if (!multipart_ && (buf_.size() > o_.multipart_threshold ||
                        (opts_.size && *opts_.size > o_.multipart_threshold))) {
      start_multipart();
    }
    if (multipart_) {
      while (buf_.size() >= part_size(next_part_)) dispatch(part_size(next_part_));
    }
  }

  void commit() override {
    if (done_) throw Error(ErrorKind::Internal, "s3 put " + s_.where(full_) + ": commit twice");
    try {
      if (!multipart_) {
        put_single();
      } else {
        if (!buf_.empty()) dispatch(buf_.size());
        finish_workers();
        if (error_) std::rethrow_exception(error_);
        complete();
      }
      done_ = true;
    } catch (...) {
      abort();
      throw;
    }
  }

  void abort() noexcept override {
    done_ = true;
    cancel_ = true;
    try {
      finish_workers();
      if (!upload_id_.empty()) {
        auto client = s_.pool().acquire();
        Call call = make_call("abort-multipart", "DELETE", full_);
        call.query = {{"uploadId", upload_id_}};
        upload_id_.clear();
        auto r = s_.execute(*client, call);
        if (r.status >= 300 && r.status != 404) {
          spdlog::warn("s3 abort multipart upload of {}: HTTP {}", s_.where(full_), r.status);
        }
      }
    } catch (const std::exception& e) {
      spdlog::warn("s3 abort multipart upload of {}: {}", s_.where(full_), e.what());
    }
    buf_.clear();
    buf_.shrink_to_fit();
    close_spill();
  }

 private:
  static int open_spill_file(const std::string& configured) {
    std::string dir = configured;
    if (dir.empty()) {
      const char* t = std::getenv("TMPDIR");
      dir = (t != nullptr && *t != '\0') ? t : "/var/tmp";
    }
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);  // no name: nothing left behind
    if (fd < 0) spdlog::debug("s3 upload spool in {} unavailable ({}); buffering in memory", dir, std::strerror(errno));
    return fd;
  }

  // Appends to the spool file; false (nothing lost: spilled_ bytes are in the file) when it fails.
  bool spill(ByteView data) {
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t r = ::pwrite(spill_fd_, data.data() + off, data.size() - off, static_cast<off_t>(spilled_ + off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        spdlog::debug("s3 upload spool write failed ({}); buffering in memory", std::strerror(errno));
        return false;
      }
      off += static_cast<std::size_t>(r);
    }
    spill_digests_->update(data);
    spilled_ += data.size();
    return true;
  }

  // Back to buffering in memory: what was spooled is read into buf_.
  void unspill() {
    buf_.resize(static_cast<std::size_t>(spilled_));
    std::size_t got = 0;
    while (got < buf_.size()) {
      ssize_t r = ::pread(spill_fd_, buf_.data() + got, buf_.size() - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw errno_error("s3 put " + s_.where(full_) + ": read back the upload spool", r < 0 ? errno : EIO);
      got += static_cast<std::size_t>(r);
    }
    close_spill();
  }

  void close_spill() noexcept {
    if (spill_fd_ >= 0) ::close(spill_fd_);
    spill_fd_ = -1;
    spill_digests_.reset();
  }

  static constexpr std::size_t kTailCheck = 64;
  void keep_tail(ByteView d) {
    if (d.size() >= kTailCheck) {
      tail_.assign(d.end() - kTailCheck, d.end());
      return;
    }
    tail_.insert(tail_.end(), d.begin(), d.end());
    if (tail_.size() > kTailCheck) tail_.erase(tail_.begin(), tail_.end() - kTailCheck);
  }

  struct Part {
    int number;
    Bytes data;
  };
  struct Done {
    std::string etag;
    std::string md5;  // raw
  };

  std::uint64_t part_size(int number) const {
    // Double every 2000 parts so an object of unknown size stays within S3's 10000 parts.
    int shift = std::min((number - 1) / 2000, 4);
    std::uint64_t base = std::max(o_.part_size, kMinPartSize);
    if (opts_.size) base = std::max(base, (*opts_.size + 9000) / 9000);
    return base << shift;
  }

  void check_absent(HttpClient& client) {
    if (!opts_.if_absent) return;
    if (s_.head_raw(client, full_)) {
      throw Error(ErrorKind::Duplicate, "s3 put " + s_.where(full_) + ": the object already exists");
    }
  }

  void put_single() {
    auto client = s_.pool().acquire();
    check_absent(*client);
    Call call = make_call("put", "PUT", full_);
    std::string md5, md5_hex;
    if (spill_fd_ >= 0) {
      spill_digests_->finish();
      call.body_fd = spill_fd_;
      call.body_size = spilled_;
      call.payload_hash = spill_digests_->sha256_hex();
      md5 = spill_digests_->md5_base64();
      md5_hex = spill_digests_->md5_hex();
    } else {
      call.body = buf_;
      md5 = sigv4::md5_base64(call.body);
      md5_hex = sigv4::md5_hex(buf_);
    }
    call.headers = {{"content-md5", md5}};
    int attempts = 0;
    call.reset = [&] { ++attempts; };
    if (opts_.if_absent && s_.cond_writes() != s3caps::Cond::Unsupported) {
      if (put_conditional(*client, call, md5_hex, attempts)) return;
      check_absent(*client);  // the store refused the condition: check again, right before the upload
    }
    const auto started = Clock::now();
    auto r = s_.execute(*client, call);
    if (r.status < 200 || r.status >= 300) s_.fail(r, call);
    if (opts_.if_absent) confirm_ours(*client, md5_hex, Clock::now() - started);
  }

  // The PUT with `If-None-Match: *`. True when stored; false when the store does not do conditional
  // writes (now remembered), and the caller falls back to an unconditional PUT it confirms afterwards.
  bool put_conditional(HttpClient& client, Call& call, const std::string& md5_hex, const int& attempts) {
    call.headers.emplace_back("if-none-match", "*");
    call.expect_continue = s_.cond_writes() == s3caps::Cond::Unknown;  // a probe: a 501 costs no body
    auto r = s_.execute(client, call);
    call.headers.pop_back();
    call.expect_continue = false;
    if (r.status >= 200 && r.status < 300) {
      s_.learned(s3caps::Cond::Supported);
      return true;
    }
    if (r.status == 412) {
      s_.learned(s3caps::Cond::Supported);
      if (attempts > 1) {
        // A lost answer to an earlier attempt that did store the object? Same MD5 means it was ours.
        auto h = s_.head_raw(client, full_);
        if (h && ascii_lower(unquote(h->header("etag"))) == md5_hex) return true;
      }
      throw Error(ErrorKind::Duplicate, "s3 put " + s_.where(full_) + ": the object already exists");
    }
    if (!not_implemented(r)) s_.fail(r, call);
    s_.learned(s3caps::Cond::Unsupported);
    return false;
  }

  // After an unconditional create-if-absent upload: another writer that passed its HEAD while ours was
  // in flight may still be uploading. Give such an upload time to land (a settle time scaled by how long
  // ours took), then require the stored object to be ours: its ETag is the MD5 of our body (single PUT)
  // or of our part MD5s (multipart). Anything else means another writer's bytes are stored: Duplicate.
  // tail_fallback (multipart): where the ETag is not the MD5 form (AWS with SSE-KMS), the object is ours
  // when one suffix-range read shows our size and our last kTailCheck bytes (the trailer of an encoded
  // object, which carries its content digest).
  void confirm_ours(HttpClient& client, const std::string& etag, Clock::duration took, bool tail_fallback = false) {
    using std::chrono::milliseconds;
    const auto settle = std::clamp<Clock::duration>(2 * took + milliseconds(250), milliseconds(250), milliseconds(5000));
    std::this_thread::sleep_for(settle);
    auto h = s_.head_raw(client, full_);
    if (!h) {
      throw Error(ErrorKind::Transient, "s3 put " + s_.where(full_) + ": the object vanished right after its upload");
    }
    const std::string stored = ascii_lower(unquote(h->header("etag")));
    if (stored != etag && tail_fallback) {
      ObjectTail t = s_.tail_of(full_, kTailCheck);
      if (t.size == total_ && t.bytes == tail_) {
        spdlog::debug("s3 put {}: etag {} is not the MD5 form, size and last bytes are ours", s_.where(full_), stored);
        return;
      }
    }
    if (stored != etag) {
      throw Error(ErrorKind::Duplicate, "s3 put " + s_.where(full_) + ": another writer stored this key during the upload "
                                        "(stored etag " + stored + ", ours " + etag + ")");
    }
  }

  void start_multipart() {
    auto client = s_.pool().acquire();
    check_absent(*client);
    std::string body;
    Call call = make_call("create-multipart", "POST", full_);
    call.query = {{"uploads", ""}};
    call.reset = [&] { body.clear(); };
    call.on_body = [&](ByteView b) { body.append(reinterpret_cast<const char*>(b.data()), b.size()); };
    call.check = [&](const HttpResponse&) {
      if (s3xml::text(body, "UploadId").empty()) throw RetryRequest{"create-multipart: no UploadId"};
    };
    auto r = s_.execute(*client, call);
    if (r.status != 200) s_.fail(r, call);
    upload_id_ = s3xml::text(body, "UploadId");
    multipart_ = true;
    const int n = std::max(1, o_.upload_parallel);
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { work(); });
  }

  void dispatch(std::size_t n) {
    Part p{next_part_++, Bytes(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n))};
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < static_cast<std::size_t>(std::max(1, o_.upload_parallel)) || error_; });
    if (error_) std::rethrow_exception(error_);
    queue_.push_back(std::move(p));
    cv_.notify_all();
  }

  void work() {
    auto client = s_.pool().acquire();
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
        Call call = make_call("upload-part", "PUT", full_);
        call.query = {{"partNumber", std::to_string(p.number)}, {"uploadId", upload_id_}};
        call.body = p.data;
        call.headers = {{"content-md5", sigv4::md5_base64(call.body)}};
        call.cancel = &cancel_;
        call.check = [&](const HttpResponse& r) {
          if (r.header("etag").empty()) throw RetryRequest{"upload-part: no ETag"};
        };
        auto r = s_.execute(*client, call);
        if (r.status != 200) s_.fail(r, call);
        std::lock_guard lock(mu_);
        done_parts_[p.number] = Done{r.header("etag"), md5_raw(p.data)};
      } catch (...) {
        std::lock_guard lock(mu_);
        if (!error_) error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
    }
  }

  void finish_workers() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
      cv_.notify_all();
    }
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void complete() {
    auto client = s_.pool().acquire();
    const int parts = next_part_ - 1;
    if (static_cast<int>(done_parts_.size()) != parts) {
      throw Error(ErrorKind::Internal, "s3 put " + s_.where(full_) + ": missing parts");
    }
    check_absent(*client);
    std::string xml = "<CompleteMultipartUpload>";
    std::string md5s;
    for (const auto& [num, d] : done_parts_) {
      xml += "<Part><PartNumber>" + std::to_string(num) + "</PartNumber><ETag>" + s3xml::escape(d.etag) +
             "</ETag></Part>";
      md5s += d.md5;
    }
    xml += "</CompleteMultipartUpload>";
    const std::string expected_etag = sigv4::md5_hex(as_bytes(md5s)) + "-" + std::to_string(parts);
    std::string body;
    int attempts = 0;
    Call call = make_call("complete-multipart", "POST", full_);
    call.query = {{"uploadId", upload_id_}};
    call.body = as_bytes(xml);
    call.headers = {{"content-md5", sigv4::md5_base64(call.body)}, {"content-type", "application/xml"}};
    call.reset = [&] {
      body.clear();
      ++attempts;
    };
    call.on_body = [&](ByteView b) { body.append(reinterpret_cast<const char*>(b.data()), b.size()); };
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
    const bool cond = opts_.if_absent && s_.cond_writes() != s3caps::Cond::Unsupported;
    if (cond) call.headers.emplace_back("if-none-match", "*");
    auto started = Clock::now();
    auto r = s_.execute(*client, call);
    if (cond && not_implemented(r)) {
      s_.learned(s3caps::Cond::Unsupported);
      call.headers.pop_back();
      check_absent(*client);
      started = Clock::now();
      r = s_.execute(*client, call);
    }
    if (r.status == 200 && s3xml::has(body, "Error")) {
      HttpResponse fake = r;
      fake.status = 500;
      fake.error_body = body;
      s_.fail(fake, call);
    }
    bool ours = r.status == 200;
    if (r.status == 404 && attempts > 1) {
      // An earlier attempt may have completed the upload and lost its answer: accept the object only
      // if it is exactly ours (multipart ETag = MD5 of the part MD5s, "-", part count).
      auto h = s_.head_raw(*client, full_);
      ours = h && ascii_lower(unquote(h->header("etag"))) == expected_etag;
    }
    if (!ours && r.status == 412) {
      throw Error(ErrorKind::Duplicate, "s3 put " + s_.where(full_) + ": the object already exists");
    }
    if (!ours) s_.fail(r, call);
    upload_id_.clear();
    // Only a store seen honouring If-None-Match is trusted with it here: Swift's s3api ignores it on
    // CompleteMultipartUpload (and refuses it with 501 only on PUT).
    if (opts_.if_absent && s_.cond_writes() != s3caps::Cond::Supported) {
      confirm_ours(*client, expected_etag, Clock::now() - started, true);
    }
  }

  S3Storage& s_;
  const S3Options& o_;
  std::string full_;
  PutOptions opts_;
  Bytes buf_;
  int spill_fd_ = -1;                             // single-PUT body spooled here (see the constructor)
  std::uint64_t spilled_ = 0;
  std::optional<sigv4::BodyDigests> spill_digests_;
  std::uint64_t total_ = 0;
  Bytes tail_;  // the last kTailCheck bytes written (see confirm_ours)
  bool done_ = false;
  bool multipart_ = false;
  std::string upload_id_;
  int next_part_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Part> queue_;
  std::vector<std::thread> workers_;
  std::map<int, Done> done_parts_;
  std::exception_ptr error_;
  bool closing_ = false;
  std::atomic<bool> cancel_{false};
};

std::unique_ptr<ObjectWriter> S3Storage::put(const std::string& key, const PutOptions& opts) {
  return std::make_unique<S3Writer>(*this, full_key(key), opts);
}

}  // namespace

std::optional<ContentRange> parse_content_range(std::string_view h) {
  if (!h.starts_with("bytes ")) return std::nullopt;
  h.remove_prefix(6);
  auto number = [&h](std::uint64_t* out, char end) {
    std::size_t stop = end == '\0' ? h.size() : h.find(end);
    if (stop == std::string_view::npos) return false;
    bool ok = false;
    *out = parse_u64(std::string(h.substr(0, stop)), &ok);
    h.remove_prefix(std::min(h.size(), stop + 1));
    return ok;
  };
  ContentRange cr;
  if (h.starts_with("*/")) {
    h.remove_prefix(2);
    cr.unsatisfied = true;
    if (!number(&cr.total, '\0')) return std::nullopt;
    return cr;
  }
  if (!number(&cr.first, '-') || !number(&cr.last, '/') || !number(&cr.total, '\0')) return std::nullopt;
  if (cr.first > cr.last || cr.last >= cr.total) return std::nullopt;
  return cr;
}

namespace s3caps {
namespace {

struct Entry {
  std::int64_t when = 0;
  Cond cond = Cond::Unknown;
  std::string endpoint;
  std::string bucket;
};

// A directory only this user can change: not a symlink, owned by us, no group or other write.
bool private_dir(const std::string& dir) {
  struct stat st;
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
         (st.st_mode & 022) == 0;
}

std::string dir_of(const std::string& file) {
  std::size_t slash = file.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : file.substr(0, slash);
}

bool fresh(const Entry& e, std::int64_t now) { return e.when <= now && now - e.when < kMaxAgeS; }

// The entries of a file we trust (ours, in a private directory, not a symlink); none otherwise.
std::vector<Entry> load(const std::string& file) {
  std::vector<Entry> out;
  if (file.empty() || !private_dir(dir_of(file))) return out;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return out;
  std::string text;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 022) == 0 &&
      st.st_size < 64 * 1024) {
    text.resize(static_cast<std::size_t>(st.st_size));
    ssize_t n = ::pread(fd, text.data(), text.size(), 0);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  ::close(fd);
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    Entry e;
    std::string cond, extra;
    if (!(fields >> e.when >> cond >> e.endpoint >> e.bucket) || (fields >> extra) || (cond != "yes" && cond != "no")) {
      continue;
    }
    e.cond = cond == "yes" ? Cond::Supported : Cond::Unsupported;
    out.push_back(std::move(e));
  }
  return out;
}

bool write_file(const std::string& file, const std::string& text) {
  static std::atomic<unsigned> seq{0};
  const std::string tmp = file + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(seq++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::close(fd) == 0 && ok;
  ok = ok && ::rename(tmp.c_str(), file.c_str()) == 0;
  if (!ok) ::unlink(tmp.c_str());
  return ok;
}

}  // namespace

std::string default_file() {
  std::string dir;
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && *xdg == '/' && private_dir(xdg)) {
    dir = std::string(xdg) + "/pgvault";
  } else {
    const char* tmp = std::getenv("TMPDIR");
    dir = std::string(tmp != nullptr && *tmp == '/' ? tmp : "/tmp") + "/pgvault-" + std::to_string(::geteuid());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return "";
  return private_dir(dir) ? dir + "/s3-capabilities" : "";
}

Cond recall(const std::string& file, const std::string& endpoint, const std::string& bucket, std::int64_t now) {
  Cond cond = Cond::Unknown;
  std::int64_t newest = 0;
  for (const auto& e : load(file)) {
    if (e.endpoint == endpoint && e.bucket == bucket && fresh(e, now) && (cond == Cond::Unknown || e.when >= newest)) {
      cond = e.cond;
      newest = e.when;
    }
  }
  return cond;
}

void remember(const std::string& file, const std::string& endpoint, const std::string& bucket, Cond cond,
              std::int64_t now) {
  auto spaceless = [](const std::string& v) { return !v.empty() && v.find_first_of(" \t\r\n") == std::string::npos; };
  if (file.empty() || cond == Cond::Unknown || !spaceless(endpoint) || !spaceless(bucket)) return;
  if (!private_dir(dir_of(file))) return;
  std::vector<Entry> entries;
  for (auto& e : load(file)) {
    if (fresh(e, now) && !(e.endpoint == endpoint && e.bucket == bucket)) entries.push_back(std::move(e));
  }
  entries.push_back(Entry{now, cond, endpoint, bucket});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.when < b.when; });
  if (entries.size() > kMaxEntries) entries.erase(entries.begin(), entries.end() - kMaxEntries);
  std::string text;
  for (const auto& e : entries) {
    text += std::to_string(e.when) + (e.cond == Cond::Supported ? " yes " : " no ") + e.endpoint + " " + e.bucket + "\n";
  }
  if (!write_file(file, text)) spdlog::debug("could not update {}: {}", file, std::strerror(errno));
}

}  // namespace s3caps

std::unique_ptr<Storage> make_s3_storage(const S3Options& o) {
  if (o.bucket.empty()) throw Error(ErrorKind::Config, "s3: bucket is required");
  if (o.uri_style != "path" && o.uri_style != "virtual") {
    throw Error(ErrorKind::Config, "s3: uri_style must be \"path\" or \"virtual\", not \"" + o.uri_style + "\"");
  }
  if (o.access_key_id.empty() || o.secret_access_key.empty()) {
    throw Error(ErrorKind::Config, "s3: access_key_id and secret_access_key are required");
  }
  if (o.region.empty()) throw Error(ErrorKind::Config, "s3: region is required");
  if (o.part_size < kMinPartSize || o.part_size > (5ull << 30)) {
    throw Error(ErrorKind::Config, "s3: part_size must be between 5 MiB and 5 GiB");
  }
  if (o.upload_parallel < 1 || o.upload_parallel > 64) {
    throw Error(ErrorKind::Config, "s3: upload_parallel must be between 1 and 64");
  }
  if (o.get_chunk_size < 64 * 1024) throw Error(ErrorKind::Config, "s3: get_chunk_size must be at least 64 KiB");
  if (o.multipart_threshold > (5ull << 30)) throw Error(ErrorKind::Config, "s3: multipart_threshold above 5 GiB");
  if (o.max_retries < 0 || o.total_timeout_s < 1 || o.connect_timeout_s < 1 || o.low_speed_time_s < 1) {
    throw Error(ErrorKind::Config, "s3: retry and timeout settings must be positive");
  }
  return std::make_unique<S3Storage>(o);
}

}  // namespace pgvault
