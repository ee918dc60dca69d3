#include "common/crypto/crypto.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "common/base/errors.h"

namespace pgvault {

namespace {

// The most recent OpenSSL error as text (for Internal errors; never contains key material).
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown openssl error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

[[noreturn]] void throw_openssl(std::string_view what) {
  throw Error(ErrorKind::Internal, std::string(what) + ": " + openssl_error());
}

// Wipes a buffer holding secret material when it goes out of scope.
template <typename Container>
class Wipe {
 public:
  explicit Wipe(Container& c) : c_(c) {}
  ~Wipe() {
    if (!c_.empty()) OPENSSL_cleanse(c_.data(), c_.size());
  }
  Wipe(const Wipe&) = delete;
  Wipe& operator=(const Wipe&) = delete;

 private:
  Container& c_;
};

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

bool is_space(std::uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string mode_string(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Reads a small secret file (key or passphrase), refusing group/other access. `label` is "key file" or
// "passphrase file". The caller wipes the returned bytes.
Bytes read_secret_file(const std::string& path, std::string_view label, std::size_t max_size) {
  std::string name = std::string(label) + " " + path;
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw errno_error("open " + name, errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw errno_error("stat " + name, errno);
  if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::Config, name + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    throw Error(ErrorKind::Config, name + " is readable by group or others (mode " +
                                       mode_string(st.st_mode) + "); chmod 600 it");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_size) {
    throw Error(ErrorKind::Config, name + " is too large (" + std::to_string(st.st_size) +
                                       " bytes, at most " + std::to_string(max_size) + " expected)");
  }

  Bytes data(max_size + 1);
  std::size_t len = 0;
  for (;;) {
    if (len == data.size()) break;
    ssize_t n = ::read(fd, data.data() + len, data.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      OPENSSL_cleanse(data.data(), data.size());
      throw errno_error("read " + name, err);
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  if (len > max_size) {  // grew between fstat and read
    OPENSSL_cleanse(data.data(), data.size());
    throw Error(ErrorKind::Config, name + " is too large (at most " + std::to_string(max_size) +
                                       " bytes expected)");
  }
  // Shrink without leaving a copy of the secret behind in a freed buffer.
  Bytes out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(len));
  OPENSSL_cleanse(data.data(), data.size());
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// SHA-256

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

// ---------------------------------------------------------------------------------------------------
// base64

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
      OPENSSL_cleanse(out.data(), out.size());
      throw bad("undecodable input");
    }
    written += static_cast<std::size_t>(w);
  }
  out.resize(written - pad);
  // Canonical form only ("QR==" and "QQ==" must not both decode to "A").
  std::string again = to_base64(out);
  bool canonical = again == b64;
  OPENSSL_cleanse(again.data(), again.size());
  if (!canonical) {
    OPENSSL_cleanse(out.data(), out.size());
    throw bad("non-canonical padding");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// random, keys

void random_bytes(std::span<std::uint8_t> out) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    int n = static_cast<int>(std::min<std::size_t>(out.size() - pos, INT_MAX));
    if (RAND_bytes(out.data() + pos, n) != 1) throw_openssl("random_bytes: RAND_bytes failed");
    pos += static_cast<std::size_t>(n);
  }
}

MasterKey::MasterKey(ByteView bytes) {
  if (bytes.size() != bytes_.size()) {
    throw Error(ErrorKind::InvalidInput,
                "a master key must be 32 bytes (got " + std::to_string(bytes.size()) + ")");
  }
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
}

MasterKey::~MasterKey() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

MasterKey load_key_file(const std::string& path) {
  Bytes data = read_secret_file(path, "key file", 4096);
  Wipe wipe_data(data);
  if (data.size() == 32) return MasterKey(data);

  std::size_t begin = 0;
  std::size_t end = data.size();
  while (begin < end && is_space(data[begin])) ++begin;
  while (end > begin && is_space(data[end - 1])) --end;
  std::string_view text(reinterpret_cast<const char*>(data.data()) + begin, end - begin);

  if (text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) { return hex_digit_value(c) >= 0; })) {
    Bytes key = from_hex(text);
    Wipe wipe_key(key);
    return MasterKey(key);
  }
  try {
    Bytes key = from_base64(text);
    Wipe wipe_key(key);
    if (key.size() == 32) return MasterKey(key);
  } catch (const Error&) {
    // not base64: fall through to the format error
  }
  throw Error(ErrorKind::Config, "key file " + path +
                                     ": expected 32 raw bytes, 64 hex digits or base64 of 32 bytes (got " +
                                     std::to_string(data.size()) + " bytes)");
}

KdfParams new_kdf_params() {
  KdfParams p;
  p.salt.resize(16);
  random_bytes(p.salt);
  return p;
}

std::string load_passphrase_file(const std::string& path) {
  Bytes data = read_secret_file(path, "passphrase file", 64 * 1024);
  Wipe wipe_data(data);
  auto nl = std::find(data.begin(), data.end(), std::uint8_t{'\n'});
  std::size_t len = static_cast<std::size_t>(nl - data.begin());
  if (len > 0 && data[len - 1] == '\r') --len;
  if (len == 0) {
    throw Error(ErrorKind::Config,
                "passphrase file " + path + " is empty (its first line must hold the passphrase)");
  }
  return std::string(reinterpret_cast<const char*>(data.data()), len);
}

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
  Wipe wipe_out(out);
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
  Wipe wipe_key(check_key);
  return to_hex(hmac_sha256(check_key, as_bytes("pgvault")));
}

}  // namespace pgvault
