// The HTTP transport seam under the S3 client: what one S3 request sends and what comes back, and the
// interface that carries it.
//
// Contract of HttpTransport::perform():
// - Sends one request and returns its final response (after any 100 Continue). It never throws for an
//   HTTP or network failure: curl_code says the exchange did not complete (a CURLcode: the S3 client
//   decides what is retried), status is 0 when no answer came.
// - The body of a 2xx response goes to on_body in pieces (it may throw: the transfer stops and
//   perform() rethrows); the body of any other status is kept in error_body (first 64 KiB).
// - It may be called from several threads at once (the S3 Storage is thread-safe).
// The production transport is libcurl (make_curl_transport in common/storage/s3/http.h); unit tests
// pass a scripted one (tests/unit/storage/s3_client_test.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/io.h"

namespace pgvault {

struct HttpRequest {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string url;     // fully encoded
  std::vector<std::pair<std::string, std::string>> headers;
  ByteView body;       // request body for PUT/POST (may be empty)
  int body_fd = -1;    // or, when >= 0: the body is body_size bytes read from this file (pread, from 0)
  std::uint64_t body_size = 0;
  const std::atomic<bool>* cancel = nullptr;  // when set and true, the transfer stops early
  // Send `Expect: 100-continue`: the body goes out only after the server's 100 (or after 1 s without an
  // answer), so a request refused on its headers does not cost the body. Off: no Expect header at all.
  bool expect_continue = false;
};

struct HttpResponse {
  int curl_code = 0;        // CURLcode; 0 = the exchange completed (any HTTP status)
  std::string curl_error;   // curl's message when curl_code != 0
  long status = 0;          // HTTP status (0 when none was received)
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, final response only
  std::string error_body;   // body of a non-2xx response (first 64 KiB)
  // Value of a header, or "" when absent.
  std::string header(std::string_view lower_name) const;
  bool has_header(std::string_view lower_name) const;
};

// Receives the body of a 2xx response in pieces; may throw (the transfer stops, the exception is
// rethrown by perform()).
using BodyCallback = std::function<void(ByteView)>;

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual HttpResponse perform(const HttpRequest& req, const BodyCallback& on_body) = 0;
};

}  // namespace pgvault
