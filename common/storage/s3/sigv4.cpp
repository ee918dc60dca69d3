#include "common/storage/s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "common/base/errors.h"
#include "common/base/time.h"
#include "common/base/text.h"
#include "common/crypto/crypto.h"
#include "common/storage/s3/transport.h"

namespace pgvault::sigv4 {
namespace {

std::string digest(const EVP_MD* md, ByteView data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) {
    throw Error(ErrorKind::Internal, "openssl digest failed");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hmac_sha256(std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len) == nullptr) {
    throw Error(ErrorKind::Internal, "openssl hmac failed");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hex_of(std::string_view s) { return to_hex(as_bytes(s)); }

// Trim, and collapse every run of spaces (and tabs/newlines of folded values) into one space.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string sha256_hex(ByteView data) { return hex_of(digest(EVP_sha256(), data)); }

namespace {
std::string base64_of(const std::string& raw) { return to_base64(as_bytes(raw)); }

EVP_MD_CTX* new_ctx(const EVP_MD* md) {
  EVP_MD_CTX* c = EVP_MD_CTX_new();
  if (c == nullptr || EVP_DigestInit_ex(c, md, nullptr) != 1) {
    EVP_MD_CTX_free(c);
    throw Error(ErrorKind::Internal, "digest init failed");
  }
  return c;
}

std::string final_of(void* ctx) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx), out, &len) != 1) throw Error(ErrorKind::Internal, "digest failed");
  return std::string(reinterpret_cast<const char*>(out), len);
}
}  // namespace

BodyDigests::BodyDigests() : md5_(new_ctx(EVP_md5())) {}

BodyDigests::~BodyDigests() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(md5_)); }

void BodyDigests::update(ByteView data) {
  sha_.update(data);
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(md5_), data.data(), data.size()) != 1) {
    throw Error(ErrorKind::Internal, "digest update failed");
  }
}

void BodyDigests::finish() {
  Sha256Digest d = sha_.final();
  sha_hex_ = to_hex(ByteView(d.data(), d.size()));
  md5_raw_ = final_of(md5_);
}

std::string BodyDigests::sha256_hex() const { return sha_hex_; }
std::string BodyDigests::md5_base64() const { return base64_of(md5_raw_); }
std::string BodyDigests::md5_hex() const { return hex_of(md5_raw_); }
std::string md5_hex(ByteView data) { return hex_of(digest(EVP_md5(), data)); }
std::string md5_raw(ByteView data) { return digest(EVP_md5(), data); }

std::string md5_base64(ByteView data) { return base64_of(digest(EVP_md5(), data)); }

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  return out;
}

std::string canonical_query(const Pairs& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

std::string amz_date_now() { return format_utc_compact(static_cast<std::int64_t>(std::time(nullptr))); }

Signed sign(const Request& req, const Credentials& creds, std::string_view region,
            std::string_view service, std::string_view amz_date) {
  if (amz_date.size() != 16) throw Error(ErrorKind::Internal, "sigv4: bad x-amz-date");
  // Lowercased names, values in order of appearance joined with ','; std::map sorts by name.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : req.headers) {
    auto [it, inserted] = headers.try_emplace(ascii_lower(name), canonical_value(value));
    if (!inserted) {
      it->second += ',';
      it->second += canonical_value(value);
    }
  }
  Signed s;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ':' + value + '\n';
    if (!s.signed_headers.empty()) s.signed_headers += ';';
    s.signed_headers += name;
  }
  s.canonical_request = req.method + '\n' + uri_encode(req.path, true) + '\n' + canonical_query(req.query) +
                        '\n' + canonical_headers + '\n' + s.signed_headers + '\n' + req.payload_hash;

  std::string_view date = amz_date.substr(0, 8);
  std::string scope = std::string(date) + '/' + std::string(region) + '/' + std::string(service) +
                      "/aws4_request";
  s.string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(amz_date) + '\n' + scope + '\n' +
                     sha256_hex(as_bytes(s.canonical_request));

  std::string k = hmac_sha256("AWS4" + creds.secret_access_key, date);
  k = hmac_sha256(k, region);
  k = hmac_sha256(k, service);
  k = hmac_sha256(k, "aws4_request");
  s.signature = hex_of(hmac_sha256(k, s.string_to_sign));
  s.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + '/' + scope +
                    ", SignedHeaders=" + s.signed_headers + ", Signature=" + s.signature;
  return s;
}

}  // namespace pgvault::sigv4
