// The s3 Storage's listing and deletes: ListObjectsV2 pages, DELETE, DeleteObjects batches (one by one
// on a store that does not implement DeleteObjects).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/base/errors.h"
#include "common/base/time.h"
#include "common/storage/s3/s3_parse.h"
#include "common/storage/s3/s3_retry.h"
#include "common/storage/s3/s3_storage.h"
#include "common/storage/s3/s3_xml.h"

namespace pgvault::s3 {
namespace {

constexpr std::size_t kMaxDeleteBatch = 1000;

// The objects of one ListBucketResult page under the storage prefix, keys relative to it.
void add_listed(const std::string& body, const std::string& prefix, std::vector<ObjectInfo>* out) {
  const bool url_encoded = s3xml::text(body, "EncodingType") == "url";
  for (auto c : s3xml::elements(body, "Contents")) {
    std::string k = s3xml::text(c, "Key");
    if (url_encoded) k = s3xml::url_decode(k);
    if (!k.starts_with(prefix)) continue;
    ObjectInfo info;
    info.key = k.substr(prefix.size());
    bool ok = false;
    info.size = parse_u64(s3xml::text(c, "Size"), &ok);
    info.mtime = parse_iso8601_prefix(s3xml::text(c, "LastModified")).value_or(0);
    out->push_back(std::move(info));
  }
}

}  // namespace

std::vector<ObjectInfo> S3Storage::list(const std::string& prefix) {
  std::vector<ObjectInfo> out;
  std::string token;
  const std::string full = client_.full_key(prefix);
  for (;;) {
    std::string body;
    Call call = make_collecting_call("list", "GET", "", &body);
    call.query = {{"list-type", "2"}, {"prefix", full}, {"encoding-type", "url"}};
    if (!token.empty()) call.query.emplace_back("continuation-token", token);
    call.check = [&](const HttpResponse&) {
      if (!s3xml::has(body, "ListBucketResult")) throw RetryRequest{"list: incomplete ListBucketResult"};
    };
    auto r = client_.execute(call);
    if (r.status != 200) {
      call.key = full;
      client_.fail(r, call);
    }
    add_listed(body, client_.prefix(), &out);
    if (s3xml::text(body, "IsTruncated") != "true") break;
    token = s3xml::text(body, "NextContinuationToken");
    if (token.empty()) {
      throw Error(ErrorKind::Internal, "s3 list " + client_.where(full) + ": truncated listing without a token");
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return out;
}

void S3Storage::remove(const std::string& key) {
  Call call = make_call("delete", "DELETE", client_.full_key(key));
  auto r = client_.execute(call);
  if (r.status == 404 || (r.status >= 200 && r.status < 300)) return;
  client_.fail(r, call);
}

void S3Storage::remove_many(const std::vector<std::string>& keys) {
  for (std::size_t i = 0; i < keys.size(); i += kMaxDeleteBatch) {
    std::size_t end = std::min(keys.size(), i + kMaxDeleteBatch);
    if (no_delete_objects_.load()) {
      remove_each(keys, i, end);
    } else {
      remove_batch(keys, i, end);
    }
  }
}

void S3Storage::remove_each(const std::vector<std::string>& keys, std::size_t begin, std::size_t end) {
  for (std::size_t k = begin; k < end; ++k) remove(keys[k]);
}

// One DeleteObjects request (Quiet: the answer lists only failures; NoSuchKey is not one).
void S3Storage::remove_batch(const std::vector<std::string>& keys, std::size_t begin, std::size_t end) {
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>";
  for (std::size_t k = begin; k < end; ++k) {
    xml += "<Object><Key>" + s3xml::escape(client_.full_key(keys[k])) + "</Key></Object>";
  }
  xml += "</Delete>";
  std::string body;
  Call call = make_collecting_call("delete-objects", "POST", "", &body);
  call.query = {{"delete", ""}};
  call.body = as_bytes(xml);
  call.headers = {{"content-md5", sigv4::md5_base64(call.body)}, {"content-type", "application/xml"}};
  call.check = [&](const HttpResponse&) {
    if (!s3xml::has(body, "DeleteResult")) throw RetryRequest{"delete: incomplete DeleteResult"};
  };
  HttpResponse r = client_.execute(call);
  if (not_implemented(r)) {
    spdlog::debug("s3 {}: DeleteObjects not supported, deleting one by one", client_.options().bucket);
    no_delete_objects_ = true;
    remove_each(keys, begin, end);
    return;
  }
  if (r.status != 200) client_.fail(r, call);
  for (auto e : s3xml::elements(body, "Error")) {
    std::string code = s3xml::text(e, "Code");
    if (code == "NoSuchKey") continue;
    HttpResponse fake;
    fake.status = code == "AccessDenied" ? 403 : 500;
    fake.error_body = "<Error>" + std::string(e) + "</Error>";
    Call one = call;
    one.key = s3xml::text(e, "Key");
    client_.fail(fake, one);
  }
}

}  // namespace pgvault::s3
