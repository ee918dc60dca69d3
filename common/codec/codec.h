// The object codec: the one-pass pipeline that turns plaintext into a stored object and back.
//
// Encode: plaintext -> SHA-256 and size (observed) -> zstd (optional) -> AES-256-GCM in chunks
// (optional) -> header + body + trailer. Decode reverses it and verifies everything: header magic and
// version, every AEAD tag (chunk order and truncation included), the zstd frame being complete, and the
// plaintext SHA-256 and size against the trailer. The byte layout is in docs/FORMAT.md and is frozen by
// golden objects in tests/unit/data/.
//
// Format version 2 (written) binds an encrypted object to its name: the storage key it is written under
// is part of every chunk's AAD, so the same bytes under another key fail to decode (Corruption). Its
// trailer carries a keyed digest (HMAC-SHA-256, see keyed_claim) instead of the plaintext SHA-256, so
// the stored object does not reveal a fingerprint of its content. Version 1 objects are still read.
//
// Memory is constant whatever the object size. A decoder passes plaintext downstream as it goes, so
// its output is only trustworthy once finish() has returned without throwing: consumers write to a
// temporary file and publish it only after that.
// Verification failures throw ErrorKind::Corruption; an encrypted object with no key or the wrong key
// throws ErrorKind::Auth (a wrong key shows as a failed tag on the first chunk; the identity file's key
// check normally catches it before any object is read).
//
// Inside common/codec: object_format (header, trailer, name binding, per-object keys), chunk_cipher
// (AES-256-GCM per chunk), encoder.cpp and decoder.cpp (the two pipelines), failure_latch.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/io.h"
#include "common/codec/options.h"
#include "common/crypto/crypto.h"

namespace pgvault {

// Compression and Encryption: common/codec/options.h.

inline constexpr std::size_t kObjectHeaderSize = 32;
inline constexpr std::size_t kObjectTrailerSize = 48;
inline constexpr std::uint32_t kDefaultChunkSize = 64 * 1024;
// Largest chunk size an encoder accepts and a decoder believes (a decoder buffers one chunk, so a
// header claiming more is treated as corrupt rather than allocated).
inline constexpr std::uint32_t kMaxChunkSize = 16 * 1024 * 1024;

struct EncodeOptions {
  Compression compression = Compression::Zstd;
  int level = 3;                     // zstd level (1..19; negative levels allowed by zstd)
  int threads = 0;                   // zstd worker threads; 0 = compress in the calling thread
  std::size_t job_size = 0;          // with threads > 0: bytes per zstd job (0 = zstd's default); smaller
                                     // jobs bound memory (each worker buffers about two jobs)
  int window_log = 0;                // > 0: zstd's window at most 2^window_log bytes (the level's own
                                     // when smaller; memory of both ends scales with it); 0 = the level's
  int table_log = 0;                 // > 0: at the double-fast levels (3, 4), zstd's hash and chain
                                     // tables at most 2^table_log entries each; 0 = the level's
  const MasterKey* key = nullptr;    // nullptr: no encryption
  std::uint32_t chunk_size = kDefaultChunkSize;  // 1..kMaxChunkSize; used only when encrypting
  // The storage key the object is written under (e.g. "wal/0000000100000000/000000010000000000000007").
  // Required when encrypting (authenticated, and part of the keyed digest); unused otherwise.
  std::string bound_name;
};

// A plaintext digest, or the claim a trailer makes about it.
struct Digest {
  Sha256Digest sha256{};   // SHA-256 of the plaintext; when `keyed`, the keyed claim instead (keyed_claim)
  std::uint64_t size = 0;  // plaintext bytes
  bool keyed = false;      // a keyed claim never equals a plain digest
  std::string hex() const;
  std::string describe() const;  // "sha256 <hex>, N bytes" or "hmac-sha256 <hex>, N bytes"
  bool operator==(const Digest&) const = default;
};

// What the header says about an object.
struct ObjectHeader {
  std::uint8_t version = 2;
  Compression compression = Compression::None;
  Encryption encryption = Encryption::None;
  std::uint32_t chunk_size = 0;  // AEAD chunk size (bytes of the compressed stream); 0 when unencrypted
};

class ObjectEncoder final : public Sink {
 public:
  // Writes the encoded object to `out`; finish() writes the trailer and then calls out.finish().
  ObjectEncoder(Sink& out, const EncodeOptions& opts);
  ~ObjectEncoder() override;
  void write(ByteView plaintext) override;
  void finish() override;
  // Valid after finish(). The plaintext digest (never keyed), whatever the trailer carries.
  const Digest& digest() const;
  std::uint64_t encoded_size() const;  // bytes written to `out`

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ObjectDecoder final : public Sink {
 public:
  // `key` may be nullptr; an encrypted object then fails with ErrorKind::Auth.
  // `bound_name` is the storage key the object is read from: a version 2 encrypted object written under
  // another name fails with Corruption. `what` names the object in error messages.
  ObjectDecoder(Sink& out, const MasterKey* key, std::string bound_name, std::string what);
  ~ObjectDecoder() override;
  void write(ByteView encoded) override;
  // Verifies the trailer, digest and size, then calls out.finish().
  void finish() override;
  const Digest& digest() const;        // valid after finish(); the plaintext digest (never keyed)
  const ObjectHeader& header() const;  // valid once the header bytes arrived

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses the trailer from the last kObjectTrailerSize bytes of an object (a ranged read), giving the
// digest it claims without downloading or decoding the body: the plaintext SHA-256, or for a version 2
// encrypted object the keyed claim (`keyed` set). Throws Corruption if the bytes are not a trailer. The
// claim is not verified: a full decode verifies it.
Digest parse_trailer(ByteView last_bytes, const std::string& what);

// The keyed claim a version 2 encrypted object stored under `name` carries for plaintext `plain`:
// HMAC-SHA256(HKDF(master, "", "pgvault digest v2"), sha256 || u64be(size) || name), size unchanged.
// Compare it with parse_trailer's result to tell "same content" without a download.
Digest keyed_claim(const MasterKey& master, const Digest& plain, std::string_view name);

// Convenience for small objects.
Bytes encode_bytes(ByteView plaintext, const EncodeOptions& opts);
Bytes decode_bytes(ByteView encoded, const MasterKey* key, const std::string& bound_name, const std::string& what);

}  // namespace pgvault
