// The S3 backend's configuration: the options checked once (make_s3_storage), the endpoint parsed, the
// key prefix normalised and the transport settings derived. Internal to common/storage/s3.
#pragma once

#include <string>

#include "common/storage/s3/http.h"
#include "common/storage/s3/s3.h"

namespace pgvault::s3 {

struct Endpoint {
  std::string scheme;  // "http" or "https"
  std::string host;    // as written, without port ("[::1]" keeps its brackets)
  std::string port;    // "" when not written
  std::string id() const { return scheme + "://" + host + (port.empty() ? "" : ":" + port); }
};

// "" = https://s3.<region>.amazonaws.com. Throws Config naming the endpoint when it is not
// scheme://host[:port].
Endpoint parse_endpoint(const std::string& endpoint, const std::string& region);

// Throws Config naming the first option out of its range. Makes no request.
void validate_options(const S3Options& o);

// "" or "a/b/" (leading slashes dropped, a trailing one added).
std::string normalise_prefix(std::string prefix);

HttpSettings http_settings(const S3Options& o);

}  // namespace pgvault::s3
