// The byte layout of a stored object (docs/FORMAT.md), inside the codec: header and trailer fields,
// the name block a version 2 object authenticates, and the keys derived per object. The encoder
// (encoder.cpp) and the decoder (decoder.cpp) build on it; nothing outside common/codec includes it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/codec/codec.h"

namespace pgvault::codec_format {

inline constexpr std::uint8_t kHeaderMagic[4] = {'P', 'G', 'V', 'O'};
inline constexpr std::uint8_t kTrailerMagic[4] = {'P', 'G', 'V', 'T'};
inline constexpr std::uint8_t kFormatV1 = 1;       // read only
inline constexpr std::uint8_t kFormatVersion = 2;  // written
inline constexpr std::size_t kSaltOffset = 8;
inline constexpr std::size_t kSaltSize = 16;
inline constexpr std::size_t kChunkSizeOffset = 24;
inline constexpr std::size_t kKeyIdOffset = 28;  // v2 encrypted: key id; otherwise reserved (zero)
inline constexpr std::size_t kKeyIdSize = 4;
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::size_t kNonceSize = 12;
// Trailer bytes authenticated with the final chunk: v1 digest + size; v2 also the digest kind and
// reserved bytes (everything but the magic).
inline constexpr std::size_t kTrailerAuthSizeV1 = 40;
inline constexpr std::size_t kTrailerAuthSizeV2 = 44;
inline constexpr std::size_t kTrailerSizeOffset = 32;
inline constexpr std::size_t kTrailerKindOffset = 40;  // v2: 0 plaintext SHA-256, 1 keyed claim
inline constexpr std::size_t kTrailerMagicOffset = 44;
inline constexpr std::uint8_t kDigestPlain = 0;
inline constexpr std::uint8_t kDigestKeyed = 1;
inline constexpr std::size_t kMaxNameSize = 0xFFFF;  // the name's length is a u16 in the AAD

using Header = std::array<std::uint8_t, kObjectHeaderSize>;
using Trailer = std::array<std::uint8_t, kObjectTrailerSize>;
using ObjectKey = std::array<std::uint8_t, 32>;

inline void put_u32be(std::uint8_t* p, std::uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}
inline void put_u64be(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}
inline std::uint32_t get_u32be(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
inline std::uint64_t get_u64be(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// A version 2 header without salt, chunk size and key id (the encoder fills those when encrypting).
Header new_header(Compression compression, bool encrypted);

// Checks magic, version, methods and reserved bytes, and that salt and chunk size are set exactly when
// the object is encrypted (chunk size 1..kMaxChunkSize). Throws Corruption "<what>: ...".
ObjectHeader read_header(const Header& h, const std::string& what);

Trailer make_trailer(const Digest& d);
// Checks the magic and reserved bytes of a trailer and returns the digest it claims.
Digest read_trailer(const std::uint8_t* t, const std::string& what);

// A storage key a version 2 encrypted object can be bound to: 1..kMaxNameSize bytes.
bool valid_name(const std::string& name);
// What a v2 encrypted object adds to every chunk's AAD: u16be(length) || the name it is stored under.
Bytes name_block(const std::string& name);

// The per-object key: HKDF-SHA256(master, salt, "pgvault object v<version>").
ObjectKey object_key(const MasterKey& master, const std::uint8_t* salt, std::uint8_t version);
// v2: the first 4 bytes of HKDF-SHA256(master, salt, "pgvault key id v2"), stored in the header so a
// reader tells a wrong key (Auth) from an altered or moved object (Corruption).
std::array<std::uint8_t, kKeyIdSize> key_id(const MasterKey& master, const std::uint8_t* salt);

}  // namespace pgvault::codec_format
