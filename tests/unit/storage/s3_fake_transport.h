// A scripted HttpTransport for the S3 client's unit tests: no server, every answer written by the test.
// Requests are answered by the script (in order) while it lasts, then by the route (a function of the
// request). Every request is recorded (method, URL, headers, body digest and size). Thread-safe: the
// multipart workers call it concurrently.
#pragma once

#include <curl/curl.h>
#include <unistd.h>

#include <deque>
#include <memory>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/storage/s3/s3.h"
#include "common/storage/s3/sigv4.h"
#include "common/storage/s3/transport.h"

namespace pgvault::testing {

struct SeenRequest {
  std::string method;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the request body (bodies above 64 KiB: only body_md5 and body_size)
  std::string body_md5;
  std::uint64_t body_size = 0;
  bool expect_continue = false;

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
  bool has_header(const std::string& name) const {
    for (const auto& h : headers) {
      if (h.first == name) return true;
    }
    return false;
  }
  // "PUT ?partNumber=1&uploadId=U", "HEAD", ...: the method and the query (if any).
  std::string what() const {
    auto q = url.find('?');
    return method + (q == std::string::npos ? "" : " " + url.substr(q));
  }
};

using Handler = std::function<HttpResponse(const SeenRequest&, const BodyCallback&)>;

// An answer with this status; a 2xx body goes to the body callback, another one into error_body.
inline Handler reply(long status, std::string body = "", std::vector<std::pair<std::string, std::string>> headers = {}) {
  return [=](const SeenRequest&, const BodyCallback& on_body) {
    HttpResponse r;
    r.status = status;
    r.headers = headers;
    if (status >= 200 && status < 300) {
      if (on_body && !body.empty()) on_body(as_bytes(body));
    } else {
      r.error_body = body;
    }
    return r;
  };
}

// An S3 error answer: <Error><Code>code</Code><Message>message</Message></Error>.
inline Handler s3_error(long status, const std::string& code, const std::string& message = "") {
  return reply(status, "<Error><Code>" + code + "</Code><Message>" + message + "</Message></Error>");
}

// A transfer that did not complete (no HTTP answer): a CURLcode.
inline Handler network_failure(CURLcode code) {
  return [=](const SeenRequest&, const BodyCallback&) {
    HttpResponse r;
    r.curl_code = code;
    r.curl_error = "scripted failure " + std::to_string(static_cast<int>(code));
    return r;
  };
}

class FakeTransport final : public HttpTransport {
 public:
  void then(Handler h) {
    std::lock_guard lock(mu_);
    script_.push_back(std::move(h));
  }
  void route(Handler h) {
    std::lock_guard lock(mu_);
    route_ = std::move(h);
  }

  HttpResponse perform(const HttpRequest& req, const BodyCallback& on_body) override {
    SeenRequest seen = record(req);
    Handler h;
    {
      std::lock_guard lock(mu_);
      seen_.push_back(seen);
      if (!script_.empty()) {
        h = std::move(script_.front());
        script_.pop_front();
      } else {
        h = route_;
      }
    }
    if (!h) {
      HttpResponse r;
      r.status = 418;  // not retried; maps to Internal and the test sees it in seen()
      r.error_body = "<Error><Code>Unscripted</Code><Message>" + seen.what() + "</Message></Error>";
      return r;
    }
    return h(seen, on_body);
  }

  std::vector<SeenRequest> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  std::vector<std::string> whats() const {
    std::vector<std::string> out;
    for (const auto& s : seen()) out.push_back(s.what());
    return out;
  }
  std::size_t script_left() const {
    std::lock_guard lock(mu_);
    return script_.size();
  }

 private:
  static SeenRequest record(const HttpRequest& req) {
    SeenRequest s{req.method, req.url, req.headers, {}, {}, 0, req.expect_continue};
    Bytes body;
    if (req.body_fd >= 0) {
      body.resize(req.body_size);
      if (::pread(req.body_fd, body.data(), body.size(), 0) != static_cast<ssize_t>(body.size())) body.clear();
    } else {
      body.assign(req.body.begin(), req.body.end());
    }
    s.body_size = body.size();
    s.body_md5 = sigv4::md5_hex(body);
    if (body.size() <= (64u << 10)) s.body.assign(body.begin(), body.end());
    return s;
  }

  mutable std::mutex mu_;
  std::deque<Handler> script_;
  Handler route_;
  std::vector<SeenRequest> seen_;
};

// Options of a test store: no capability file, retries after 1-2 ms.
inline S3Options fake_s3_options() {
  S3Options o;
  o.bucket = "bkt";
  o.prefix = "repo";
  o.endpoint = "http://s3.test:9000";
  o.access_key_id = "AK";
  o.secret_access_key = "SK";
  o.capability_file = "none";  // what the store supports is learned in this process only
  o.retry_base_ms = 1;
  o.retry_max_delay_ms = 2;
  return o;
}

// An s3 Storage over a FakeTransport.
struct Fixture {
  std::shared_ptr<FakeTransport> t = std::make_shared<FakeTransport>();
  std::unique_ptr<Storage> s;
  explicit Fixture(const S3Options& o = fake_s3_options()) : s(make_s3_storage(o, t)) {}
};

inline std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// A store without conditional writes (Swift's s3api) answering the first create-if-absent put of a
// process: HEAD absent, the conditional PUT refused with 501, HEAD absent again right before the
// upload, the plain PUT stored. The confirming HEAD after the settle time is the test's to script.
inline void script_501_fallback(FakeTransport& t) {
  t.then(reply(404));
  t.then(s3_error(501, "NotImplemented"));
  t.then(reply(404));
  t.then(reply(200));
}

}  // namespace pgvault::testing
