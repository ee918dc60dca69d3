#include "common/storage/s3/s3_retry.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "common/storage/s3/s3_client.h"
#include "common/storage/s3/s3_xml.h"

namespace pgvault::s3 {

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

bool tls_failure(int code) {
  return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE || code == CURLE_SSL_CERTPROBLEM;
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

bool not_implemented(const HttpResponse& r) {
  return r.status == 501 || s3xml::text(r.error_body, "Code") == "NotImplemented";
}

std::chrono::milliseconds backoff_delay(const S3Options& o, int retry, std::mt19937_64& rng) {
  double cap = std::min<double>(o.retry_max_delay_ms, o.retry_base_ms * std::pow(2.0, retry - 1));
  return std::chrono::milliseconds(
      static_cast<long>(std::uniform_real_distribution<double>(0, std::max(cap, 1.0))(rng)));
}

StatusError classify_status(long status, const std::string& code) {
  StatusError e;
  switch (status) {
    case 401:
    case 403:
      e.kind = ErrorKind::Auth;
      if (code == "SignatureDoesNotMatch") e.hint = " (check secret_access_key)";
      else if (code == "InvalidAccessKeyId") e.hint = " (check access_key_id)";
      else if (code == "RequestTimeTooSkewed") e.hint = " (check the system clock)";
      break;
    case 404:
      e.kind = code == "NoSuchBucket" ? ErrorKind::Config : ErrorKind::NotFound;
      break;
    case 301:
    case 307:
    case 400:
      e.kind = (status != 400 || code == "AuthorizationHeaderMalformed" || code == "InvalidBucketName" ||
                code == "InvalidRegion")
                   ? ErrorKind::Config
                   : ErrorKind::Internal;
      if (status != 400) e.hint = " (check region and endpoint)";
      break;
    case 409:
      e.kind = ErrorKind::Conflict;
      break;
    case 412:
      e.kind = ErrorKind::Duplicate;
      break;
    default:
      e.kind = status >= 500 ? ErrorKind::Transient : ErrorKind::Internal;
  }
  return e;
}

void S3Client::fail(const HttpResponse& r, const Call& call) const {
  std::string code = s3xml::text(r.error_body, "Code");
  std::string message = s3xml::text(r.error_body, "Message");
  StatusError e = classify_status(r.status, code);
  std::string msg = "s3 " + call.op + " " + where(call.key) + ": HTTP " + std::to_string(r.status);
  if (!code.empty()) msg += " " + code;
  if (!message.empty()) msg += ": " + message;
  throw Error(e.kind, msg + e.hint);
}

// The retry loop: attempts until an answer is final, max_retries retries are spent, or the next attempt
// would start after total_timeout_s; `last` keeps the reason of the last retried failure.
HttpResponse S3Client::execute(const Call& call) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(opt_.total_timeout_s);
  std::string last;
  int attempts = 0;
  for (int n = 0;; ++n) {
    if (n > 0) {
      auto delay = backoff_delay(opt_, n, rng);
      if (n > opt_.max_retries || Clock::now() + delay >= deadline) break;
      if (call.cancel != nullptr && call.cancel->load()) break;
      std::this_thread::sleep_for(delay);
    }
    ++attempts;
    HttpResponse r;
    try {
      r = attempt(call);
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
      if (tls_failure(r.curl_code)) {
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
    if (!retryable_http(r.status, code)) return r;
    last = "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code);
  }
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
  throw Error(ErrorKind::Transient, "s3 " + call.op + " " + where(call.key) + ": giving up after " +
                                        std::to_string(attempts) + " attempts in " + std::to_string(secs) +
                                        " s: " + last);
}

}  // namespace pgvault::s3
