// SHA-256 (incremental and one-shot) over OpenSSL's EVP interface.
#include <openssl/evp.h>

#include "common/base/errors.h"
#include "common/crypto/crypto.h"
#include "common/crypto/openssl_error.h"

namespace pgvault {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) throw_openssl("sha256: EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    throw_openssl("sha256: init");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(ByteView data) {
  if (ctx_ == nullptr) throw Error(ErrorKind::Internal, "sha256: update after final");
  if (data.empty()) return;
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) != 1) {
    throw_openssl("sha256: update");
  }
}

Sha256Digest Sha256::final() {
  if (ctx_ == nullptr) throw Error(ErrorKind::Internal, "sha256: final called twice");
  Sha256Digest out{};
  unsigned int len = 0;
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  if (EVP_DigestFinal_ex(ctx, out.data(), &len) != 1 || len != out.size()) {
    throw_openssl("sha256: final");
  }
  EVP_MD_CTX_free(ctx);
  ctx_ = nullptr;
  return out;
}

Sha256Digest sha256(ByteView data) {
  Sha256Digest out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    throw_openssl("sha256");
  }
  return out;
}

}  // namespace pgvault
