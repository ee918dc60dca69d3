#include "common/storage/s3/s3_config.h"

#include "common/base/errors.h"

namespace pgvault::s3 {
namespace {

constexpr std::uint64_t kMinPartSize = 5ull << 20;

}  // namespace

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

void validate_options(const S3Options& o) {
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
}

std::string normalise_prefix(std::string prefix) {
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(prefix.begin());
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  return prefix;
}

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

}  // namespace pgvault::s3
