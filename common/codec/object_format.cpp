// Object header, trailer, name binding and per-object keys. The byte layout is described in
// docs/FORMAT.md; keep the two in step.
#include "common/codec/object_format.h"

#include <algorithm>
#include <cstring>

#include "common/base/errors.h"
#include "common/crypto/wipe.h"

namespace pgvault {

namespace codec_format {

namespace {

constexpr std::string_view kObjectKeyInfoV1 = "pgvault object v1";
constexpr std::string_view kObjectKeyInfoV2 = "pgvault object v2";
constexpr std::string_view kKeyIdInfo = "pgvault key id v2";

[[noreturn]] void corrupt(const std::string& what, const std::string& msg) {
  throw Error(ErrorKind::Corruption, what + ": " + msg);
}

// Magic, version, known methods and zero reserved bytes.
void check_header_fields(const Header& h, const std::string& what) {
  if (std::memcmp(h.data(), kHeaderMagic, sizeof kHeaderMagic) != 0) corrupt(what, "not a pgvault object (bad magic)");
  if (h[4] != kFormatV1 && h[4] != kFormatVersion) {
    corrupt(what, "unsupported object format version " + std::to_string(h[4]) + " (this build reads versions 1 to " +
                      std::to_string(kFormatVersion) + ")");
  }
  if (h[5] > static_cast<std::uint8_t>(Compression::Zstd)) {
    corrupt(what, "unknown compression method " + std::to_string(h[5]) + " in the object header");
  }
  if (h[6] > static_cast<std::uint8_t>(Encryption::Aes256Gcm)) {
    corrupt(what, "unknown encryption method " + std::to_string(h[6]) + " in the object header");
  }
  bool has_key_id = h[4] != kFormatV1 && h[6] != static_cast<std::uint8_t>(Encryption::None);
  if (h[7] != 0 || (!has_key_id && (h[28] != 0 || h[29] != 0 || h[30] != 0 || h[31] != 0))) {
    corrupt(what, "corrupted object header (reserved bytes are not zero)");
  }
}

}  // namespace

Header new_header(Compression compression, bool encrypted) {
  Header h{};
  std::memcpy(h.data(), kHeaderMagic, sizeof kHeaderMagic);
  h[4] = kFormatVersion;
  h[5] = static_cast<std::uint8_t>(compression);
  h[6] = static_cast<std::uint8_t>(encrypted ? Encryption::Aes256Gcm : Encryption::None);
  return h;
}

ObjectHeader read_header(const Header& h, const std::string& what) {
  check_header_fields(h, what);
  ObjectHeader info;
  info.version = h[4];
  info.compression = static_cast<Compression>(h[5]);
  info.encryption = static_cast<Encryption>(h[6]);
  info.chunk_size = get_u32be(h.data() + kChunkSizeOffset);
  if (info.encryption == Encryption::None) {
    bool salt_zero = std::all_of(h.begin() + kSaltOffset, h.begin() + kSaltOffset + kSaltSize,
                                 [](std::uint8_t b) { return b == 0; });
    if (!salt_zero || info.chunk_size != 0) {
      corrupt(what, "corrupted object header (salt or chunk size set on an unencrypted object)");
    }
  } else if (info.chunk_size == 0 || info.chunk_size > kMaxChunkSize) {
    corrupt(what, "corrupted object header (chunk size " + std::to_string(info.chunk_size) + ")");
  }
  return info;
}

Trailer make_trailer(const Digest& d) {
  Trailer t{};
  std::memcpy(t.data(), d.sha256.data(), d.sha256.size());
  put_u64be(t.data() + kTrailerSizeOffset, d.size);
  t[kTrailerKindOffset] = d.keyed ? kDigestKeyed : kDigestPlain;
  std::memcpy(t.data() + kTrailerMagicOffset, kTrailerMagic, sizeof kTrailerMagic);
  return t;
}

Digest read_trailer(const std::uint8_t* t, const std::string& what) {
  if (std::memcmp(t + kTrailerMagicOffset, kTrailerMagic, sizeof kTrailerMagic) != 0) {
    corrupt(what, "truncated or corrupted object (no trailer at the end)");
  }
  bool kind_ok = t[kTrailerKindOffset] == kDigestPlain || t[kTrailerKindOffset] == kDigestKeyed;
  if (!kind_ok || t[kTrailerKindOffset + 1] != 0 || t[kTrailerKindOffset + 2] != 0 || t[kTrailerKindOffset + 3] != 0) {
    corrupt(what, "corrupted object trailer (reserved bytes are not zero)");
  }
  Digest d;
  std::memcpy(d.sha256.data(), t, d.sha256.size());
  d.size = get_u64be(t + kTrailerSizeOffset);
  d.keyed = t[kTrailerKindOffset] == kDigestKeyed;
  return d;
}

bool valid_name(const std::string& name) { return !name.empty() && name.size() <= kMaxNameSize; }

Bytes name_block(const std::string& name) {
  Bytes b(2 + name.size());
  b[0] = static_cast<std::uint8_t>(name.size() >> 8);
  b[1] = static_cast<std::uint8_t>(name.size());
  std::memcpy(b.data() + 2, name.data(), name.size());
  return b;
}

ObjectKey object_key(const MasterKey& master, const std::uint8_t* salt, std::uint8_t version) {
  return hkdf_sha256(master, ByteView(salt, kSaltSize), version == kFormatV1 ? kObjectKeyInfoV1 : kObjectKeyInfoV2);
}

std::array<std::uint8_t, kKeyIdSize> key_id(const MasterKey& master, const std::uint8_t* salt) {
  auto k = hkdf_sha256(master, ByteView(salt, kSaltSize), kKeyIdInfo);
  std::array<std::uint8_t, kKeyIdSize> id{};
  std::memcpy(id.data(), k.data(), id.size());
  wipe(k);
  return id;
}

}  // namespace codec_format

// ---------------------------------------------------------------------------------------------------
// Digests and trailers as the public interface (common/codec/codec.h) shows them.

namespace {
constexpr std::string_view kDigestKeyInfo = "pgvault digest v2";
}  // namespace

std::string Digest::hex() const { return to_hex(sha256); }

std::string Digest::describe() const {
  return std::string(keyed ? "hmac-sha256 " : "sha256 ") + hex() + ", " + std::to_string(size) + " bytes";
}

Digest keyed_claim(const MasterKey& master, const Digest& plain, std::string_view name) {
  auto k = hkdf_sha256(master, {}, kDigestKeyInfo);
  Bytes msg(plain.sha256.size() + 8 + name.size());
  std::memcpy(msg.data(), plain.sha256.data(), plain.sha256.size());
  codec_format::put_u64be(msg.data() + plain.sha256.size(), plain.size);
  std::memcpy(msg.data() + plain.sha256.size() + 8, name.data(), name.size());
  Digest claim{hmac_sha256(k, msg), plain.size, true};
  wipe(k);
  return claim;
}

Digest parse_trailer(ByteView last_bytes, const std::string& what) {
  if (last_bytes.size() < kObjectTrailerSize) {
    throw Error(ErrorKind::Corruption, what + ": too short to hold an object trailer (" +
                                           std::to_string(last_bytes.size()) + " bytes)");
  }
  return codec_format::read_trailer(last_bytes.data() + last_bytes.size() - kObjectTrailerSize, what);
}

}  // namespace pgvault
