// Key derivation and MACs: scrypt (passphrases), HKDF-SHA256 (per-object keys), HMAC-SHA256, key check.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>

#include "common/base/errors.h"
#include "common/crypto/crypto.h"
#include "common/crypto/openssl_error.h"
#include "common/crypto/wipe.h"

namespace pgvault {

namespace {

struct KdfDeleter {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
  void operator()(EVP_MAC* m) const { EVP_MAC_free(m); }
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
template <typename T>
using Owned = std::unique_ptr<T, KdfDeleter>;

// Runs the named KDF with `params` into out.
void kdf_derive(const char* name, OSSL_PARAM* params, std::span<std::uint8_t> out) {
  Owned<EVP_KDF> kdf(EVP_KDF_fetch(nullptr, name, nullptr));
  if (!kdf) throw_openssl(std::string("fetch kdf ") + name);
  Owned<EVP_KDF_CTX> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) throw_openssl(std::string("new kdf context ") + name);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) <= 0) {
    throw_openssl(std::string("derive ") + name);
  }
}

}  // namespace

MasterKey derive_key_from_passphrase(std::string_view passphrase, const KdfParams& params) {
  const std::uint64_t n = params.n;
  const std::uint64_t r = params.r;
  const std::uint64_t p = params.p;
  if (n < 2 || (n & (n - 1)) != 0) {
    throw Error(ErrorKind::InvalidInput, "scrypt: n must be a power of two >= 2 (got " + std::to_string(n) + ")");
  }
  if (r == 0 || p == 0) throw Error(ErrorKind::InvalidInput, "scrypt: r and p must be positive");
  // OpenSSL needs 128*r*(n+2) bytes for V plus 128*r*p for B; refuse anything above 2 GiB.
  static constexpr std::uint64_t kMaxMem = std::uint64_t{2} << 30;
  if (n > kMaxMem / 128 / r || p > kMaxMem / 128 / r || 128 * r * (n + 2) + 128 * r * p > kMaxMem) {
    throw Error(ErrorKind::InvalidInput, "scrypt: parameters need more than 2 GiB of memory");
  }
  std::uint64_t maxmem = 128 * r * (n + 2) + 128 * r * p + (std::uint64_t{1} << 20);
  std::uint64_t n_param = n;
  std::uint32_t r_param = params.r;
  std::uint32_t p_param = params.p;

  static char empty[1] = {0};
  char* pw = passphrase.empty() ? empty : const_cast<char*>(passphrase.data());
  unsigned char* salt = params.salt.empty() ? reinterpret_cast<unsigned char*>(empty)
                                            : const_cast<unsigned char*>(params.salt.data());
  OSSL_PARAM ps[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, pw, passphrase.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, params.salt.size()),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n_param),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r_param),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p_param),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
      OSSL_PARAM_construct_end(),
  };
  std::array<std::uint8_t, 32> out{};
  WipeOnExit wipe_out(out);
  kdf_derive(OSSL_KDF_NAME_SCRYPT, ps, out);
  return MasterKey(out);
}

std::array<std::uint8_t, 32> hkdf_sha256(const MasterKey& master, ByteView salt, std::string_view info) {
  char digest[] = "SHA256";
  static unsigned char empty[1] = {0};
  OSSL_PARAM ps[5];
  std::size_t i = 0;
  ps[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  ps[i++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(master.bytes().data()), master.bytes().size());
  // An absent salt means HashLen zero bytes (RFC 5869 2.2), which is what HMAC does with an empty key.
  if (!salt.empty()) {
    ps[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()),
                                                salt.size());
  }
  ps[i++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_INFO, info.empty() ? empty : reinterpret_cast<unsigned char*>(const_cast<char*>(info.data())),
      info.size());
  ps[i++] = OSSL_PARAM_construct_end();
  std::array<std::uint8_t, 32> out{};
  kdf_derive(OSSL_KDF_NAME_HKDF, ps, out);
  return out;
}

Sha256Digest hmac_sha256(ByteView key, ByteView message) {
  Owned<EVP_MAC> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac) throw_openssl("hmac: fetch");
  Owned<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(mac.get()));
  if (!ctx) throw_openssl("hmac: new context");
  char digest[] = "SHA256";
  OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                     OSSL_PARAM_construct_end()};
  static unsigned char empty[1] = {0};
  Sha256Digest out{};
  std::size_t len = 0;
  if (EVP_MAC_init(ctx.get(), key.empty() ? empty : key.data(), key.size(), ps) != 1 ||
      EVP_MAC_update(ctx.get(), message.empty() ? empty : message.data(), message.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
    throw_openssl("hmac-sha256");
  }
  return out;
}

std::string key_check(const MasterKey& key) {
  std::array<std::uint8_t, 32> check_key = hkdf_sha256(key, {}, "pgvault key check v1");
  WipeOnExit wipe_key(check_key);
  return to_hex(hmac_sha256(check_key, as_bytes("pgvault")));
}

}  // namespace pgvault
