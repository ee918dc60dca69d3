// A small synchronous HTTP client on one libcurl easy handle, for the S3 backend.
//
// One HttpClient owns one CURL easy handle and reuses it (and so its connections, TLS sessions and DNS
// cache) for every request; it is not thread-safe: use one per thread (HttpClientPool hands them out).
// perform() never throws for HTTP or network failures: it returns the curl result and the response so
// the caller decides what is retried. It throws only what a body callback throws.
// Nothing here logs; the caller must not log request headers (they carry the Authorization header).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/io.h"

namespace pgvault {

struct HttpSettings {
  long connect_timeout_s = 10;  // TCP + TLS handshake
  long low_speed_limit = 1024;  // bytes/s; a transfer slower than this for low_speed_time_s is cut
  long low_speed_time_s = 30;   // stall detection (also cuts a server that never answers)
  long request_timeout_s = 0;   // whole request; 0 = no limit
  bool verify_tls = true;
  std::string ca_file;          // PEM bundle of trusted CAs; empty: the system store
};

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

class HttpClient {
 public:
  explicit HttpClient(HttpSettings settings);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResponse perform(const HttpRequest& req, const BodyCallback& on_body = {});

 private:
  HttpSettings settings_;
  void* curl_;  // CURL*
};

// Hands out HttpClients so each thread uses one handle at a time, and keeps them for reuse.
class HttpClientPool {
 public:
  explicit HttpClientPool(HttpSettings settings) : settings_(std::move(settings)) {}

  class Lease {
   public:
    Lease(HttpClientPool& pool, std::unique_ptr<HttpClient> c) : pool_(&pool), client_(std::move(c)) {}
    Lease(Lease&&) = default;
    ~Lease();
    HttpClient& operator*() { return *client_; }
    HttpClient* operator->() { return client_.get(); }

   private:
    HttpClientPool* pool_;
    std::unique_ptr<HttpClient> client_;
  };
  Lease acquire();

 private:
  HttpSettings settings_;
  std::mutex mu_;
  std::vector<std::unique_ptr<HttpClient>> free_;
};

}  // namespace pgvault
