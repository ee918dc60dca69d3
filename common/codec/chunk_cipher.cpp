#include "common/codec/chunk_cipher.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/crypto/openssl_error.h"

namespace pgvault::codec_format {

ChunkCipher::ChunkCipher(const ObjectKey& key, bool encrypt) : encrypt_(encrypt) {
  ctx_ = EVP_CIPHER_CTX_new();
  if (ctx_ == nullptr) throw_openssl("aes-256-gcm: EVP_CIPHER_CTX_new");
  if (EVP_CipherInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key.data(), nullptr, encrypt ? 1 : 0) != 1) {
    EVP_CIPHER_CTX_free(ctx_);
    throw_openssl("aes-256-gcm: init");
  }
}

ChunkCipher::~ChunkCipher() { EVP_CIPHER_CTX_free(ctx_); }

void ChunkCipher::seal(std::uint64_t index, bool final, std::initializer_list<ByteView> aad, ByteView in,
                       std::uint8_t* out) {
  start(index, final, aad);
  int len = 0;
  if (!in.empty() &&
      (EVP_EncryptUpdate(ctx_, out, &len, in.data(), static_cast<int>(in.size())) != 1 ||
       static_cast<std::size_t>(len) != in.size())) {
    throw_openssl("aes-256-gcm: encrypt");
  }
  int tail = 0;
  if (EVP_EncryptFinal_ex(ctx_, out + in.size(), &tail) != 1 || tail != 0) {
    throw_openssl("aes-256-gcm: encrypt final");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagSize), out + in.size()) != 1) {
    throw_openssl("aes-256-gcm: get tag");
  }
}

bool ChunkCipher::open(std::uint64_t index, bool final, std::initializer_list<ByteView> aad, ByteView record,
                       std::uint8_t* out) {
  ByteView ct = record.first(record.size() - kTagSize);
  start(index, final, aad);
  int len = 0;
  if (!ct.empty() && (EVP_DecryptUpdate(ctx_, out, &len, ct.data(), static_cast<int>(ct.size())) != 1 ||
                      static_cast<std::size_t>(len) != ct.size())) {
    throw_openssl("aes-256-gcm: decrypt");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagSize),
                          const_cast<std::uint8_t*>(record.data() + ct.size())) != 1) {
    throw_openssl("aes-256-gcm: set tag");
  }
  int tail = 0;
  bool ok = EVP_DecryptFinal_ex(ctx_, out + ct.size(), &tail) > 0;
  ERR_clear_error();
  return ok;
}

void ChunkCipher::start(std::uint64_t index, bool final, std::initializer_list<ByteView> aad_parts) {
  std::uint8_t nonce[kNonceSize] = {};
  put_u64be(nonce, index);
  nonce[kNonceSize - 1] = final ? 1 : 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, encrypt_ ? 1 : 0) != 1) {
    throw_openssl("aes-256-gcm: set nonce");
  }
  for (ByteView aad : aad_parts) {
    int len = 0;
    if (!aad.empty() && EVP_CipherUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
      throw_openssl("aes-256-gcm: aad");
    }
  }
}

}  // namespace pgvault::codec_format
