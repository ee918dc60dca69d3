#include "common/crypto/crypto.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "common/base/errors.h"
#include "common/base/text.h"
#include "common/crypto/openssl_error.h"
#include "common/crypto/wipe.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

std::string hex_of(ByteView b) { return to_hex(b); }

MasterKey test_key(std::uint8_t first = 0) {
  Bytes b(32);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(first + i);
  return MasterKey(b);
}

using testing::expect_error;

// --- SHA-256 -----------------------------------------------------------------------------------------

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(hex_of(sha256(as_bytes("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_of(sha256(as_bytes(""))), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of(sha256(as_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, IncrementalMatchesOneShot) {
  Sha256 h;
  h.update(as_bytes("a"));
  h.update(as_bytes(""));
  h.update(as_bytes("bc"));
  EXPECT_EQ(hex_of(h.final()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  // One million 'a' (FIPS 180-2 vector), fed in uneven pieces.
  std::string a(1000000, 'a');
  Sha256 m;
  std::size_t pos = 0;
  for (std::size_t step = 1; pos < a.size(); step = step * 3 + 1) {
    std::size_t n = std::min(step, a.size() - pos);
    m.update(as_bytes(std::string_view(a).substr(pos, n)));
    pos += n;
  }
  EXPECT_EQ(hex_of(m.final()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FinalTwiceIsAnError) {
  Sha256 h;
  h.final();
  expect_error([&] { h.final(); }, ErrorKind::Internal);
  expect_error([&] { h.update(as_bytes("x")); }, ErrorKind::Internal);
}

// --- base64 ---------------------------------------------------------------------------------------

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (auto [plain, enc] : vectors) {
    EXPECT_EQ(to_base64(as_bytes(plain)), enc);
    Bytes dec = from_base64(enc);
    EXPECT_EQ(std::string(dec.begin(), dec.end()), plain) << enc;
  }
}

TEST(Base64, RoundTripEveryLength) {
  Bytes data;
  for (int n = 0; n < 200; ++n) {
    EXPECT_EQ(from_base64(to_base64(data)), data) << n;
    data.push_back(static_cast<std::uint8_t>(n * 37 + 11));
  }
  Bytes big(5 * 1024 * 1024 + 1);  // larger than one EVP_EncodeBlock piece
  random_bytes(big);
  EXPECT_EQ(from_base64(to_base64(big)), big);
}

TEST(Base64, RejectsGarbage) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "====", "Zg==Zg==", "Zm9v\n", "Zm9v YmFy", " Zm9v", "Zm9*",
                          "Zm-v", "Zm9=v===", "Zh==", "Zm9=", "QR=="}) {
    expect_error([&] { from_base64(bad); }, ErrorKind::InvalidInput, "invalid base64");
  }
  EXPECT_EQ(from_base64("QQ=="), (Bytes{'A'}));
}

// --- random, MasterKey -------------------------------------------------------------------------------

TEST(Random, FillsAndDiffers) {
  Bytes a(32), b(32);
  random_bytes(a);
  random_bytes(b);
  EXPECT_NE(a, b);
  EXPECT_NE(a, Bytes(32));
  random_bytes(std::span<std::uint8_t>());
}

TEST(MasterKey, RequiresExactly32Bytes) {
  expect_error([] { MasterKey(Bytes(31)); }, ErrorKind::InvalidInput, "32 bytes");
  expect_error([] { MasterKey(Bytes(33)); }, ErrorKind::InvalidInput, "32 bytes");
  MasterKey k = test_key(5);
  EXPECT_EQ(k.bytes()[0], 5);
  EXPECT_EQ(k.bytes()[31], 36);
  MasterKey copy = k;
  EXPECT_EQ(copy.bytes(), k.bytes());
}

// --- key and passphrase files ------------------------------------------------------------------------

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pgvault-crypto-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, std::string_view content, mode_t mode = 0600) {
    std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string dir_;
};

using KeyFile = TempDir;

TEST_F(KeyFile, Raw32Bytes) {
  std::string raw(32, '\0');
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<char>(i);
  raw[0] = ' ';   // whitespace bytes at the edges of a raw key are key bytes, not padding
  raw[31] = '\n';
  MasterKey k = load_key_file(write("raw.key", raw));
  EXPECT_EQ(k.bytes()[0], ' ');
  EXPECT_EQ(k.bytes()[5], 5);
  EXPECT_EQ(k.bytes()[31], '\n');
}

TEST_F(KeyFile, Hex) {
  std::string hex = to_hex(test_key().bytes());
  EXPECT_EQ(load_key_file(write("a.key", hex)).bytes(), test_key().bytes());
  EXPECT_EQ(load_key_file(write("b.key", "  " + hex + "\n")).bytes(), test_key().bytes());
  EXPECT_EQ(load_key_file(write("c.key", ascii_upper(hex) + "\r\n")).bytes(), test_key().bytes());
}

TEST_F(KeyFile, Base64) {
  std::string b64 = to_base64(test_key(100).bytes());
  ASSERT_EQ(b64.size(), 44u);
  EXPECT_EQ(load_key_file(write("a.key", b64)).bytes(), test_key(100).bytes());
  EXPECT_EQ(load_key_file(write("b.key", b64 + "\n")).bytes(), test_key(100).bytes());
}

TEST_F(KeyFile, WrongSizeOrFormat) {
  std::string p = write("short.key", std::string(31, 'x'));
  expect_error([&] { load_key_file(p); }, ErrorKind::Config,
               "key file " + p + ": expected 32 raw bytes, 64 hex digits or base64 of 32 bytes (got 31 bytes)");
  std::string hex = to_hex(test_key().bytes());
  p = write("hex63.key", hex.substr(0, 63) + "\n");
  expect_error([&] { load_key_file(p); }, ErrorKind::Config, "(got 64 bytes)");
  p = write("nonhex.key", hex.substr(0, 63) + "g");
  expect_error([&] { load_key_file(p); }, ErrorKind::Config, "expected 32 raw bytes");
  p = write("b64-31.key", to_base64(Bytes(31, 7)) + "\n");
  expect_error([&] { load_key_file(p); }, ErrorKind::Config, "expected 32 raw bytes");
  p = write("empty.key", "");
  expect_error([&] { load_key_file(p); }, ErrorKind::Config, "(got 0 bytes)");
  p = write("huge.key", std::string(100000, 'a'));
  expect_error([&] { load_key_file(p); }, ErrorKind::Config, "too large");
}

TEST_F(KeyFile, RefusesLoosePermissions) {
  std::string hex = to_hex(test_key().bytes());
  std::string p = write("loose.key", hex, 0644);
  expect_error([&] { load_key_file(p); }, ErrorKind::Config,
               "key file " + p + " is readable by group or others (mode 0644); chmod 600 it");
  p = write("group.key", hex, 0640);
  expect_error([&] { load_key_file(p); }, ErrorKind::Config, "(mode 0640)");
  p = write("ok.key", hex, 0400);
  EXPECT_EQ(load_key_file(p).bytes(), test_key().bytes());
}

TEST_F(KeyFile, MissingOrNotAFile) {
  expect_error([&] { load_key_file(dir_ + "/nope.key"); }, ErrorKind::NotFound, dir_ + "/nope.key");
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);
  expect_error([&] { load_key_file(dir_); }, ErrorKind::Config, "not a regular file");
}

using PassphraseFile = TempDir;

TEST_F(PassphraseFile, FirstLine) {
  EXPECT_EQ(load_passphrase_file(write("a", "correct horse battery\r\nsecond line\n")), "correct horse battery");
  EXPECT_EQ(load_passphrase_file(write("b", " spaced ")), " spaced ");
  EXPECT_EQ(load_passphrase_file(write("c", "x\n")), "x");
}

TEST_F(PassphraseFile, EmptyOrLoose) {
  for (const char* content : {"", "\n", "\r\n", "\nsecond"}) {
    std::string p = write("empty", content);
    expect_error([&] { load_passphrase_file(p); }, ErrorKind::Config, "passphrase file " + p + " is empty");
  }
  std::string p = write("loose", "secret\n", 0604);
  expect_error([&] { load_passphrase_file(p); }, ErrorKind::Config, "(mode 0604); chmod 600 it");
  expect_error([&] { load_passphrase_file(dir_ + "/missing"); }, ErrorKind::NotFound);
}

// --- KDFs --------------------------------------------------------------------------------------------

TEST(Scrypt, Rfc7914Vectors) {
  KdfParams p;
  p.salt = Bytes{'N', 'a', 'C', 'l'};
  p.n = 1024;
  p.r = 8;
  p.p = 16;
  EXPECT_EQ(hex_of(derive_key_from_passphrase("password", p).bytes()),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");

  KdfParams empty;
  empty.salt = {};
  empty.n = 16;
  empty.r = 1;
  empty.p = 1;
  EXPECT_EQ(hex_of(derive_key_from_passphrase("", empty).bytes()),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442");
}

TEST(Scrypt, DefaultParamsAndSensitivity) {
  KdfParams a = new_kdf_params();
  KdfParams b = new_kdf_params();
  EXPECT_EQ(a.salt.size(), 16u);
  EXPECT_NE(a.salt, b.salt);
  EXPECT_EQ(a.n, 1u << 15);
  EXPECT_EQ(a.r, 8u);
  EXPECT_EQ(a.p, 1u);
  MasterKey k1 = derive_key_from_passphrase("passphrase", a);  // needs 32 MiB: maxmem must allow it
  EXPECT_EQ(derive_key_from_passphrase("passphrase", a).bytes(), k1.bytes());
  EXPECT_NE(derive_key_from_passphrase("passphrase", b).bytes(), k1.bytes());
  EXPECT_NE(derive_key_from_passphrase("Passphrase", a).bytes(), k1.bytes());
}

TEST(Scrypt, RejectsBadParams) {
  KdfParams p;
  p.salt = Bytes(16, 1);
  p.n = 1000;
  expect_error([&] { derive_key_from_passphrase("x", p); }, ErrorKind::InvalidInput, "power of two");
  p.n = 1024;
  p.r = 0;
  expect_error([&] { derive_key_from_passphrase("x", p); }, ErrorKind::InvalidInput);
  p.r = 8;
  p.n = std::uint64_t{1} << 40;
  expect_error([&] { derive_key_from_passphrase("x", p); }, ErrorKind::InvalidInput, "memory");
}

// HKDF-SHA256 computed from its definition (RFC 5869) with HMAC, as an independent check. The RFC's
// own vectors use 22- or 80-byte input keys, which a MasterKey cannot hold.
std::array<std::uint8_t, 32> reference_hmac(ByteView key, ByteView data) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest[] = "SHA256";
  OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  std::array<std::uint8_t, 32> out{};
  std::size_t len = 0;
  static const std::uint8_t zero = 0;
  EXPECT_EQ(EVP_MAC_init(ctx, key.empty() ? &zero : key.data(), key.size(), ps), 1);
  EXPECT_EQ(EVP_MAC_update(ctx, data.data(), data.size()), 1);
  EXPECT_EQ(EVP_MAC_final(ctx, out.data(), &len, out.size()), 1);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return out;
}

std::array<std::uint8_t, 32> reference_hkdf(const MasterKey& k, ByteView salt, std::string_view info) {
  Bytes s(salt.begin(), salt.end());
  if (s.empty()) s.assign(32, 0);
  auto prk = reference_hmac(s, k.bytes());
  Bytes t(info.begin(), info.end());
  t.push_back(1);
  return reference_hmac(prk, t);
}

TEST(Hmac, Rfc4231Vectors) {
  // Test case 2: key "Jefe".
  EXPECT_EQ(hex_of(hmac_sha256(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 1: 20 bytes of 0x0b, "Hi There".
  EXPECT_EQ(hex_of(hmac_sha256(Bytes(20, 0x0b), as_bytes("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Empty key and message (what the keyed digest never uses, but must not crash on).
  EXPECT_EQ(hmac_sha256({}, {}), reference_hmac({}, {}));
}

TEST(Hkdf, MatchesDefinition) {
  MasterKey k = test_key();
  auto got = hkdf_sha256(k, as_bytes("salt"), "info");
  EXPECT_EQ(got, reference_hkdf(k, as_bytes("salt"), "info"));
  // Also computed with Python's hmac module.
  EXPECT_EQ(hex_of(got), "64cc2a23b7a1da4310420350405fdf5d632cb9bda3700d753e96cbcfeb81d449");
  EXPECT_EQ(hkdf_sha256(k, {}, "pgvault key check v1"), reference_hkdf(k, {}, "pgvault key check v1"));
  Bytes salt16(16, 0xaa);
  EXPECT_EQ(hkdf_sha256(k, salt16, ""), reference_hkdf(k, salt16, ""));
}

TEST(Hkdf, SensitiveToEveryInput) {
  MasterKey k = test_key();
  auto base = hkdf_sha256(k, as_bytes("salt"), "info");
  EXPECT_EQ(hkdf_sha256(k, as_bytes("salt"), "info"), base);
  EXPECT_NE(hkdf_sha256(k, as_bytes("salu"), "info"), base);
  EXPECT_NE(hkdf_sha256(k, as_bytes("salt"), "infp"), base);
  EXPECT_NE(hkdf_sha256(test_key(1), as_bytes("salt"), "info"), base);
  // An empty salt is RFC 5869's default: HashLen zero bytes.
  EXPECT_EQ(hkdf_sha256(k, {}, "info"), hkdf_sha256(k, Bytes(32, 0), "info"));
}

TEST(KeyCheck, FrozenValue) {
  // Stored in repository identity files: this value must never change.
  EXPECT_EQ(key_check(test_key()), "96050d7f55cbc9d11b2ddce56fccf11c9de9e340df4593d779886dc22ac5eb1d");
  EXPECT_NE(key_check(test_key(1)), key_check(test_key()));
  EXPECT_EQ(key_check(test_key(1)).size(), 64u);
}

// --- OpenSSL error text, wiping ----------------------------------------------------------------------

TEST(OpensslError, TextOfTheQueueThenClearsIt) {
  ERR_clear_error();
  EXPECT_EQ(openssl_error_text(), "unknown openssl error");
  ERR_raise(ERR_LIB_EVP, EVP_R_BAD_DECRYPT);
  ERR_raise(ERR_LIB_EVP, EVP_R_INVALID_KEY_LENGTH);
  std::string text = openssl_error_text();
  EXPECT_NE(text.find("bad decrypt"), std::string::npos) << text;  // the oldest error
  EXPECT_EQ(ERR_peek_error(), 0u) << "the queue is left clear";
  EXPECT_EQ(openssl_error_text(), "unknown openssl error");
}

TEST(OpensslError, ThrowsInternalNamingTheOperation) {
  ERR_raise(ERR_LIB_EVP, EVP_R_BAD_DECRYPT);
  try {
    throw_openssl("aes-256-gcm: decrypt");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Internal);
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("aes-256-gcm: decrypt: ", 0), 0u) << msg;
    EXPECT_NE(msg.find("bad decrypt"), std::string::npos) << msg;
    return;
  }
  ADD_FAILURE() << "no error thrown";
}

TEST(Wipe, ZeroesOnEveryExit) {
  Bytes key(32, 0xab);
  std::string pass = "correct horse";
  try {
    WipeOnExit wipe_key(key);
    WipeOnExit wipe_pass(pass);
    throw std::runtime_error("leaving early");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(key, Bytes(32, 0));
  EXPECT_EQ(pass, std::string(13, '\0'));
  std::array<std::uint8_t, 4> small{1, 2, 3, 4};
  wipe(small);
  EXPECT_EQ(small, (std::array<std::uint8_t, 4>{}));
}

}  // namespace
}  // namespace pgvault
