// The certificates TLS connections to an S3 store are verified against (verify_tls), loaded once per
// process and shared by every connection of every thread.
//
// Left to itself libcurl parses its CA bundle again for every handle that opens a connection: Debian's
// ~140 certificates cost about 40 ms of CPU each time, once per wal-push or wal-fetch call and once per
// thread of the push worker. Instead the store is built once (an X509_STORE, reference-counted and
// thread-safe in OpenSSL) and installed into each new TLS context through CURLOPT_SSL_CTX_FUNCTION.
// Where the certificates come from (trust_source):
//   - `ca_file` when set: a PEM bundle, or a directory of hashed certificates (`openssl rehash`);
//   - else libcurl's default CA directory when it holds hashed certificates (Debian: /etc/ssl/certs,
//     kept by update-ca-certificates from the same certificates as the bundle): OpenSSL then reads
//     only the issuer it needs, per connection, instead of the whole bundle;
//   - else libcurl's default bundle; else OpenSSL's default paths.
// Internal to common/storage/s3 (http.cpp).
#pragma once

#include <curl/curl.h>

#include <string>

#include "common/storage/s3/curl_api.h"

namespace pgvault {

struct TrustSource {
  bool directory = false;  // a directory of hashed certificates (else a PEM file)
  std::string path;        // empty: OpenSSL's default paths
};

// Where the trusted certificates come from, given `ca_file` and libcurl's built-in defaults.
TrustSource trust_source(const std::string& ca_file, const std::string& default_dir, const std::string& default_file);

// Whether `dir` holds at least one hashed certificate link (`<8 hex digits>.<digit>`).
bool has_hashed_certificates(const std::string& dir);

// Makes the handle `c` verify its next TLS connections against the shared store for `ca_file`, loaded
// on first use. Throws Error(Config) naming ca_file (or the system default) when no certificate can be
// loaded from it. When libcurl's TLS backend is not OpenSSL, sets ca_file the plain way (libcurl then
// loads it per connection).
void use_shared_trust(const CurlApi& api, CURL* c, const std::string& ca_file);

}  // namespace pgvault
