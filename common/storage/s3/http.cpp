#include "common/storage/s3/http.h"

#include "common/storage/s3/curl_api.h"
#include "common/storage/s3/tls_trust.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>

#include "common/base/errors.h"
#include "common/base/text.h"
#include "common/base/version.h"

namespace pgvault {
namespace {

constexpr std::size_t kMaxErrorBody = 64 * 1024;

struct Transfer {
  CURL* curl = nullptr;
  const HttpRequest* req = nullptr;
  const BodyCallback* on_body = nullptr;
  HttpResponse* resp = nullptr;
  std::size_t sent = 0;
  std::exception_ptr error;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

size_t on_header(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    t->resp->headers.clear();  // a new response (after 100 Continue): keep only the final one
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->resp->headers.emplace_back(ascii_lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }
  return size * n;
}

size_t on_write(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  long status = 0;
  curl_api().easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  const size_t len = size * n;
  if (status >= 200 && status < 300) {
    if (t->on_body != nullptr && *t->on_body) {
      try {
        (*t->on_body)(ByteView(reinterpret_cast<const std::uint8_t*>(data), len));
      } catch (...) {
        t->error = std::current_exception();
        return CURL_WRITEFUNC_ERROR;
      }
    }
  } else if (t->resp->error_body.size() < kMaxErrorBody) {
    t->resp->error_body.append(data, std::min(len, kMaxErrorBody - t->resp->error_body.size()));
  }
  return len;
}

size_t on_read(char* buf, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  if (t->req->body_fd >= 0) {
    const size_t want = static_cast<size_t>(std::min<std::uint64_t>(size * n, t->req->body_size - t->sent));
    size_t got = 0;
    while (got < want) {
      ssize_t r = ::pread(t->req->body_fd, buf + got, want - got, static_cast<off_t>(t->sent + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        t->error = std::make_exception_ptr(
            r < 0 ? errno_error("read upload body", errno)
                  : Error(ErrorKind::Io, "read upload body: the spooled file ended early"));
        return CURL_READFUNC_ABORT;
      }
      got += static_cast<size_t>(r);
    }
    t->sent += got;
    return got;
  }
  const ByteView body = t->req->body;
  const size_t len = std::min(size * n, body.size() - t->sent);
  if (len > 0) std::memcpy(buf, body.data() + t->sent, len);
  t->sent += len;
  return len;
}

int on_seek(void* userp, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userp);
  const std::uint64_t size = t->req->body_fd >= 0 ? t->req->body_size : t->req->body.size();
  if (origin != SEEK_SET || offset < 0 || static_cast<std::uint64_t>(offset) > size) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->sent = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

int on_progress(void* userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(userp);
  return (t->req->cancel != nullptr && t->req->cancel->load()) ? 1 : 0;
}

}  // namespace

HttpClient::HttpClient(HttpSettings settings) : settings_(std::move(settings)) {
  curl_ = curl_api().easy_init();
  if (curl_ == nullptr) throw Error(ErrorKind::Internal, "curl_easy_init failed");
}

HttpClient::~HttpClient() { curl_api().easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResponse HttpClient::perform(const HttpRequest& req, const BodyCallback& on_body) {
  const CurlApi& api = curl_api();
  CURL* c = static_cast<CURL*>(curl_);
  // Reset options but keep the connection cache, so the next request reuses the connection.
  api.easy_reset(c);
  HttpResponse resp;
  Transfer t{c, &req, &on_body, &resp, 0, nullptr};
  char errbuf[CURL_ERROR_SIZE] = {0};

  api.easy_setopt(c, CURLOPT_URL, req.url.c_str());
  api.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  api.easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  api.easy_setopt(c, CURLOPT_USERAGENT, "pgvault/" PGVAULT_VERSION);
  api.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  api.easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  api.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, settings_.connect_timeout_s);
  api.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, settings_.low_speed_limit);
  api.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, settings_.low_speed_time_s);
  api.easy_setopt(c, CURLOPT_TIMEOUT, settings_.request_timeout_s);
  api.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, settings_.verify_tls ? 1L : 0L);
  api.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, settings_.verify_tls ? 2L : 0L);
  if (settings_.verify_tls && req.url.starts_with("https://")) use_shared_trust(api, c, settings_.ca_file);

  api.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  api.easy_setopt(c, CURLOPT_HEADERDATA, &t);
  api.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  api.easy_setopt(c, CURLOPT_WRITEDATA, &t);
  api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  api.easy_setopt(c, CURLOPT_XFERINFODATA, &t);

  if (req.method == "HEAD") {
    api.easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    api.easy_setopt(c, CURLOPT_UPLOAD, 1L);
    api.easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                    static_cast<curl_off_t>(req.body_fd >= 0 ? req.body_size : req.body.size()));
  } else if (req.method == "POST") {
    api.easy_setopt(c, CURLOPT_POST, 1L);
    api.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    api.easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  if (req.method == "PUT" || req.method == "POST") {
    api.easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    api.easy_setopt(c, CURLOPT_READDATA, &t);
    api.easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
    api.easy_setopt(c, CURLOPT_SEEKDATA, &t);
  }

  struct curl_slist* list = nullptr;
  for (const auto& [k, v] : req.headers) list = api.slist_append(list, (k + ": " + v).c_str());
  // No 100-continue round trip unless asked for (a probe whose body a refusal should not cost).
  list = api.slist_append(list, req.expect_continue ? "Expect: 100-continue" : "Expect:");
  const bool has_type = std::any_of(req.headers.begin(), req.headers.end(),
                                    [](const auto& h) { return ascii_lower(h.first) == "content-type"; });
  if (req.method == "POST" && !has_type) list = api.slist_append(list, "Content-Type:");
  api.easy_setopt(c, CURLOPT_HTTPHEADER, list);

  CURLcode rc = api.easy_perform(c);
  api.slist_free_all(list);
  api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  // The error buffer is owned by this frame: detach it from the handle.
  api.easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  if (t.error) std::rethrow_exception(t.error);
  resp.curl_code = static_cast<int>(rc);
  if (rc != CURLE_OK) resp.curl_error = errbuf[0] != 0 ? errbuf : api.easy_strerror(rc);
  return resp;
}

HttpClientPool::Lease::~Lease() {
  if (client_ == nullptr) return;
  std::lock_guard lock(pool_->mu_);
  pool_->free_.push_back(std::move(client_));
}

HttpClientPool::Lease HttpClientPool::acquire() {
  {
    std::lock_guard lock(mu_);
    if (!free_.empty()) {
      auto c = std::move(free_.back());
      free_.pop_back();
      return Lease(*this, std::move(c));
    }
  }
  return Lease(*this, std::make_unique<HttpClient>(settings_));
}

namespace {

class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(HttpSettings settings) : pool_(std::move(settings)) {}
  HttpResponse perform(const HttpRequest& req, const BodyCallback& on_body) override {
    auto client = pool_.acquire();
    return client->perform(req, on_body);
  }

 private:
  HttpClientPool pool_;
};

}  // namespace

std::shared_ptr<HttpTransport> make_curl_transport(HttpSettings settings) {
  return std::make_shared<CurlTransport>(std::move(settings));
}

}  // namespace pgvault
