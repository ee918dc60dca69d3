// Cryptographic building blocks (OpenSSL 3): digests, keys, key derivation.
//
// Keys: a repository master key is 32 bytes, loaded from [encryption] key_file (32 raw bytes, 64 hex
// digits, or base64 of 32 bytes; surrounding whitespace ignored) or derived from a passphrase
// ([encryption] passphrase_file, first line) with scrypt, using the salt and cost parameters stored in
// the repository identity file. Key files readable by group or others are refused (Config error naming
// the file and its mode), as ssh does for private keys.
// Every object gets its own key: HKDF-SHA256(master, per-object random salt) (see docs/FORMAT.md).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/hex.h"  // to_hex/from_hex: digests and key files are written as hex
#include "common/base/io.h"

namespace pgvault {

using Sha256Digest = std::array<std::uint8_t, 32>;

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(ByteView data);
  Sha256Digest final();  // may be called once

 private:
  void* ctx_;  // EVP_MD_CTX*
};

Sha256Digest sha256(ByteView data);

std::string to_base64(ByteView data);
// Throws ErrorKind::InvalidInput on bad input.
Bytes from_base64(std::string_view b64);

void random_bytes(std::span<std::uint8_t> out);

// 32-byte master key; the bytes are wiped when it is destroyed.
class MasterKey {
 public:
  MasterKey() = default;
  explicit MasterKey(ByteView bytes);  // exactly 32 bytes, else InvalidInput
  ~MasterKey();
  MasterKey(const MasterKey&) = default;
  MasterKey& operator=(const MasterKey&) = default;
  const std::array<std::uint8_t, 32>& bytes() const { return bytes_; }

 private:
  std::array<std::uint8_t, 32> bytes_{};
};

// Reads a key file (see above). Errors name the file: Config for wrong size/format or loose permissions,
// NotFound/Io when it cannot be read.
MasterKey load_key_file(const std::string& path);

// scrypt parameters; stored in the identity file so they can be raised later.
struct KdfParams {
  Bytes salt;               // 16 random bytes
  std::uint64_t n = 1 << 15;
  std::uint32_t r = 8;
  std::uint32_t p = 1;
};
KdfParams new_kdf_params();
// Reads the first line of the passphrase file (permissions checked as for key files). Config error if empty.
std::string load_passphrase_file(const std::string& path);
MasterKey derive_key_from_passphrase(std::string_view passphrase, const KdfParams& params);

// HKDF-SHA256(ikm = master, salt, info) -> 32 bytes.
std::array<std::uint8_t, 32> hkdf_sha256(const MasterKey& master, ByteView salt, std::string_view info);

// HMAC-SHA256(key, message) (RFC 2104).
Sha256Digest hmac_sha256(ByteView key, ByteView message);

// A value stored in the identity file that proves a key is the repository's key without revealing it:
// hex(HMAC-SHA256(HKDF(master, "", "pgvault key check v1"), "pgvault")).
std::string key_check(const MasterKey& key);

}  // namespace pgvault
