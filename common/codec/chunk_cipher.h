// AES-256-GCM over the chunks of one object (docs/FORMAT.md 1.3): chunk i is sealed with the
// nonce u64be(i) || 0x000000 || final, and its AAD is the header, the name block (version 2) and, for
// the final chunk only, the trailer's authenticated bytes. A reordered, dropped, truncated or altered
// chunk fails to open.
#pragma once

#include <cstdint>
#include <initializer_list>

#include <openssl/types.h>

#include "common/codec/object_format.h"

namespace pgvault::codec_format {

// One cipher context reused for every chunk of an object: the key is set once, each chunk only
// re-initialises the nonce.
class ChunkCipher {
 public:
  ChunkCipher(const ObjectKey& key, bool encrypt);
  ~ChunkCipher();
  ChunkCipher(const ChunkCipher&) = delete;
  ChunkCipher& operator=(const ChunkCipher&) = delete;

  // Encrypts `in` into out[0, in.size()) and writes the tag to out[in.size(), +kTagSize).
  void seal(std::uint64_t index, bool final, std::initializer_list<ByteView> aad, ByteView in, std::uint8_t* out);

  // Decrypts record = ciphertext || tag into out[0, record.size() - kTagSize). Returns false if the tag
  // does not verify (out then holds unauthenticated bytes the caller must not use).
  bool open(std::uint64_t index, bool final, std::initializer_list<ByteView> aad, ByteView record,
            std::uint8_t* out);

 private:
  void start(std::uint64_t index, bool final, std::initializer_list<ByteView> aad_parts);

  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool encrypt_;
};

}  // namespace pgvault::codec_format
