// Base64 (RFC 4648, standard alphabet, padded): lenient nowhere, canonical only.
#include <openssl/evp.h>

#include <algorithm>

#include "common/base/errors.h"
#include "common/crypto/crypto.h"
#include "common/crypto/wipe.h"

namespace pgvault {

std::string to_base64(ByteView data) {
  // EVP_EncodeBlock takes an int length: encode in pieces that are a multiple of 3 bytes.
  static constexpr std::size_t kPiece = 3 * 1024 * 1024;
  std::string out;
  out.resize((data.size() + 2) / 3 * 4 + 1);
  std::size_t written = 0;
  for (std::size_t pos = 0; pos < data.size(); pos += kPiece) {
    std::size_t n = std::min(kPiece, data.size() - pos);
    int w = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + written), data.data() + pos,
                            static_cast<int>(n));
    written += static_cast<std::size_t>(w);
  }
  out.resize(written);
  return out;
}

Bytes from_base64(std::string_view b64) {
  // Strict: standard alphabet, padded to a multiple of 4, '=' only as the last one or two characters,
  // canonical (unused bits zero), no whitespace. EVP_DecodeBlock itself is lenient about whitespace and
  // does not account for padding, so validate first.
  auto bad = [](std::string_view why) {
    return Error(ErrorKind::InvalidInput, "invalid base64: " + std::string(why));
  };
  if (b64.size() % 4 != 0) throw bad("length is not a multiple of 4");
  std::size_t pad = 0;
  if (!b64.empty() && b64.back() == '=') pad = (b64.size() >= 2 && b64[b64.size() - 2] == '=') ? 2 : 1;
  for (std::size_t i = 0; i + pad < b64.size(); ++i) {
    char c = b64[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/';
    if (!ok) throw bad("unexpected character at offset " + std::to_string(i));
  }
  if (b64.empty()) return {};

  static constexpr std::size_t kPiece = 4 * 1024 * 1024;
  Bytes out(b64.size() / 4 * 3);
  std::size_t written = 0;
  for (std::size_t pos = 0; pos < b64.size(); pos += kPiece) {
    std::size_t n = std::min(kPiece, b64.size() - pos);
    int w = EVP_DecodeBlock(out.data() + written, reinterpret_cast<const unsigned char*>(b64.data() + pos),
                            static_cast<int>(n));
    if (w < 0) {
      wipe(out);
      throw bad("undecodable input");
    }
    written += static_cast<std::size_t>(w);
  }
  out.resize(written - pad);
  // Canonical form only ("QR==" and "QQ==" must not both decode to "A").
  std::string again = to_base64(out);
  bool canonical = again == b64;
  wipe(again);
  if (!canonical) {
    wipe(out);
    throw bad("non-canonical padding");
  }
  return out;
}

}  // namespace pgvault
