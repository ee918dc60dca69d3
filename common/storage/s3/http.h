// The production HttpTransport (common/storage/s3/transport.h): libcurl, loaded lazily (curl_api.h).
//
// make_curl_transport() returns a transport that hands each request to a free HttpClient of its pool.
// One HttpClient owns one CURL easy handle and reuses it (and so its connections, TLS sessions and DNS
// cache) for every request; it is not thread-safe: use one per thread (HttpClientPool hands them out).
// perform() never throws for HTTP or network failures: it returns the curl result and the response so
// the caller decides what is retried. It throws only what a body callback throws, and Error(Config)
// when the trusted certificates cannot be loaded (tls_trust.h).
// Nothing here logs; the caller must not log request headers (they carry the Authorization header).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/storage/s3/transport.h"

namespace pgvault {

struct HttpSettings {
  long connect_timeout_s = 10;  // TCP + TLS handshake
  long low_speed_limit = 1024;  // bytes/s; a transfer slower than this for low_speed_time_s is cut
  long low_speed_time_s = 30;   // stall detection (also cuts a server that never answers)
  long request_timeout_s = 0;   // whole request; 0 = no limit
  bool verify_tls = true;
  std::string ca_file;          // trusted CAs: a PEM bundle or a hashed directory; empty: the system's
};

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

// The libcurl transport: thread-safe, one easy handle per concurrent request, reused (connections,
// TLS sessions, DNS cache) by the next request.
std::shared_ptr<HttpTransport> make_curl_transport(HttpSettings settings);

}  // namespace pgvault
