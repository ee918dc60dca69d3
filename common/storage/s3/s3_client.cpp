#include "common/storage/s3/s3_client.h"

#include <utility>

#include "common/base/errors.h"

namespace pgvault::s3 {

Call make_call(std::string op, std::string method, std::string key) {
  Call c;
  c.op = std::move(op);
  c.method = std::move(method);
  c.key = std::move(key);
  return c;
}

Call make_collecting_call(std::string op, std::string method, std::string key, std::string* body) {
  Call c = make_call(std::move(op), std::move(method), std::move(key));
  c.reset = [body] { body->clear(); };
  c.on_body = [body](ByteView b) { body->append(reinterpret_cast<const char*>(b.data()), b.size()); };
  return c;
}

S3Client::S3Client(const S3Options& options, std::shared_ptr<HttpTransport> transport,
                   std::shared_ptr<CondWrites> cond)
    : opt_(options),
      ep_(parse_endpoint(options.endpoint, options.region)),
      prefix_(normalise_prefix(options.prefix)),
      transport_(std::move(transport)),
      cond_(std::move(cond)) {}

std::string S3Client::describe() const {
  return "s3://" + opt_.bucket + (prefix_.empty() ? "" : "/" + prefix_.substr(0, prefix_.size() - 1));
}

std::string S3Client::url_and_path(const Call& call, std::string* host, std::string* path) const {
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

// One attempt: the request signed now (x-amz-date is per attempt), the call's partial state reset.
HttpResponse S3Client::attempt(const Call& call) {
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
  return transport_->perform(req, call.on_body);
}

std::optional<HttpResponse> S3Client::head_raw(const std::string& full) {
  Call call = make_call("head", "HEAD", full);
  auto r = execute(call);
  if (r.status == 404) return std::nullopt;
  if (r.status < 200 || r.status >= 300) fail(r, call);
  return r;
}

}  // namespace pgvault::s3
