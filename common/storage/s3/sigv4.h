// AWS Signature Version 4 (header authorization) and the small hashing helpers S3 requests need.
//
// The signer is a pure function of its inputs: it never reads the clock or the environment, so the
// published AWS test-suite vectors and an independent signer (botocore) can check it byte for byte.
// It follows the S3 rules: the canonical URI is the path encoded once (no "."/".." normalisation, '/'
// kept), query names and values are encoded with the RFC 3986 unreserved set and sorted by encoded name
// then value, header names are lowercased, values trimmed with inner runs of spaces collapsed, and
// repeated headers joined with ','. Every header passed in is signed (the caller passes only the ones it
// wants signed; host and x-amz-date must be among them).
//
// Nothing here logs. The secret key appears only in the HMAC chain, never in a returned string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/io.h"
#include "common/crypto/crypto.h"

namespace pgvault::sigv4 {

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none (the caller adds x-amz-security-token when set)
};

struct Request {
  std::string method;        // "GET", "PUT", ...
  std::string path = "/";    // decoded path ("/bucket/my key"); encoded by the signer
  Pairs query;               // decoded names and values, in any order
  Pairs headers;             // names in any case; all are signed
  std::string payload_hash;  // lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct Signed {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // lowercase hex
  std::string authorization;   // the Authorization header value
};

// amz_date is "YYYYMMDDTHHMMSSZ"; the credential scope uses its first 8 characters.
Signed sign(const Request& req, const Credentials& creds, std::string_view region,
            std::string_view service, std::string_view amz_date);

// RFC 3986 percent-encoding of every byte outside A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash),
// uppercase hex, as SigV4 and S3 URLs require.
std::string uri_encode(std::string_view s, bool keep_slash);

// "a=1&b=2": encoded and sorted as in the canonical request; also the query string of the URL so the
// two never differ.
std::string canonical_query(const Pairs& query);

// Current UTC time as "YYYYMMDDTHHMMSSZ".
std::string amz_date_now();

std::string sha256_hex(ByteView data);
std::string md5_base64(ByteView data);
std::string md5_hex(ByteView data);
std::string md5_raw(ByteView data);  // the 16 bytes

// SHA-256 and MD5 of a body fed in pieces (an upload spooled to a file is hashed as it is written).
class BodyDigests {
 public:
  BodyDigests();
  ~BodyDigests();
  BodyDigests(const BodyDigests&) = delete;
  BodyDigests& operator=(const BodyDigests&) = delete;
  void update(ByteView data);
  void finish();  // then:
  std::string sha256_hex() const;
  std::string md5_base64() const;
  std::string md5_hex() const;

 private:
  Sha256 sha_;
  void* md5_;  // EVP_MD_CTX*
  std::string sha_hex_, md5_raw_;
};

}  // namespace pgvault::sigv4
