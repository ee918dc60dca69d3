// Object codec: header | body (zstd frame or raw, optionally AES-256-GCM in chunks) | trailer.
// The byte layout is described in docs/FORMAT.md; keep the two in step.
#include "common/codec/codec.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <optional>

#include "common/base/errors.h"

namespace pgvault {

namespace {

constexpr std::uint8_t kHeaderMagic[4] = {'P', 'G', 'V', 'O'};
constexpr std::uint8_t kTrailerMagic[4] = {'P', 'G', 'V', 'T'};
constexpr std::uint8_t kFormatV1 = 1;       // read only
constexpr std::uint8_t kFormatVersion = 2;  // written
constexpr std::size_t kSaltOffset = 8;
constexpr std::size_t kSaltSize = 16;
constexpr std::size_t kChunkSizeOffset = 24;
constexpr std::size_t kKeyIdOffset = 28;  // v2 encrypted: key id; otherwise reserved (zero)
constexpr std::size_t kKeyIdSize = 4;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kNonceSize = 12;
// Trailer bytes authenticated with the final chunk: v1 digest + size; v2 also the digest kind and
// reserved bytes (everything but the magic).
constexpr std::size_t kTrailerAuthSizeV1 = 40;
constexpr std::size_t kTrailerAuthSizeV2 = 44;
constexpr std::size_t kTrailerSizeOffset = 32;
constexpr std::size_t kTrailerKindOffset = 40;  // v2: 0 plaintext SHA-256, 1 keyed claim
constexpr std::size_t kTrailerMagicOffset = 44;
constexpr std::uint8_t kDigestPlain = 0;
constexpr std::uint8_t kDigestKeyed = 1;
constexpr std::size_t kMaxNameSize = 0xFFFF;    // the name's length is a u16 in the AAD
constexpr std::size_t kWriteSize = 256 * 1024;  // size of the writes handed to the downstream sink
constexpr int kWindowLogMax = 27;              // 128 MiB: more than any level up to 22 uses
constexpr std::string_view kObjectKeyInfoV1 = "pgvault object v1";
constexpr std::string_view kObjectKeyInfoV2 = "pgvault object v2";
constexpr std::string_view kKeyIdInfo = "pgvault key id v2";
constexpr std::string_view kDigestKeyInfo = "pgvault digest v2";

using Header = std::array<std::uint8_t, kObjectHeaderSize>;
using Trailer = std::array<std::uint8_t, kObjectTrailerSize>;

void put_u32be(std::uint8_t* p, std::uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}
void put_u64be(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}
std::uint32_t get_u32be(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get_u64be(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void throw_internal_openssl(std::string_view what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  char buf[256] = "unknown openssl error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  throw Error(ErrorKind::Internal, std::string(what) + ": " + buf);
}

Trailer make_trailer(const Digest& d) {
  Trailer t{};
  std::memcpy(t.data(), d.sha256.data(), d.sha256.size());
  put_u64be(t.data() + kTrailerSizeOffset, d.size);
  t[kTrailerKindOffset] = d.keyed ? kDigestKeyed : kDigestPlain;
  std::memcpy(t.data() + kTrailerMagicOffset, kTrailerMagic, sizeof kTrailerMagic);
  return t;
}

// Checks the magic and reserved bytes of a trailer and returns the digest it claims.
Digest read_trailer(const std::uint8_t* t, const std::string& what) {
  if (std::memcmp(t + kTrailerMagicOffset, kTrailerMagic, sizeof kTrailerMagic) != 0) {
    throw Error(ErrorKind::Corruption, what + ": truncated or corrupted object (no trailer at the end)");
  }
  bool kind_ok = t[kTrailerKindOffset] == kDigestPlain || t[kTrailerKindOffset] == kDigestKeyed;
  if (!kind_ok || t[kTrailerKindOffset + 1] != 0 || t[kTrailerKindOffset + 2] != 0 || t[kTrailerKindOffset + 3] != 0) {
    throw Error(ErrorKind::Corruption, what + ": corrupted object trailer (reserved bytes are not zero)");
  }
  Digest d;
  std::memcpy(d.sha256.data(), t, d.sha256.size());
  d.size = get_u64be(t + kTrailerSizeOffset);
  d.keyed = t[kTrailerKindOffset] == kDigestKeyed;
  return d;
}

bool valid_name(const std::string& name) { return !name.empty() && name.size() <= kMaxNameSize; }

// What a v2 encrypted object adds to every chunk's AAD: u16be(length) || the name it is stored under.
Bytes name_block(const std::string& name) {
  Bytes b(2 + name.size());
  b[0] = static_cast<std::uint8_t>(name.size() >> 8);
  b[1] = static_cast<std::uint8_t>(name.size());
  std::memcpy(b.data() + 2, name.data(), name.size());
  return b;
}

// AES-256-GCM with one context reused for every chunk of an object: the key is set once, each chunk
// only re-initialises the nonce.
class ChunkCipher {
 public:
  ChunkCipher(const std::array<std::uint8_t, 32>& key, bool encrypt) : encrypt_(encrypt) {
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr) throw_internal_openssl("aes-256-gcm: EVP_CIPHER_CTX_new");
    if (EVP_CipherInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key.data(), nullptr, encrypt ? 1 : 0) != 1) {
      EVP_CIPHER_CTX_free(ctx_);
      throw_internal_openssl("aes-256-gcm: init");
    }
  }
  ~ChunkCipher() { EVP_CIPHER_CTX_free(ctx_); }
  ChunkCipher(const ChunkCipher&) = delete;
  ChunkCipher& operator=(const ChunkCipher&) = delete;

  // Encrypts `in` into out[0, in.size()) and writes the tag to out[in.size(), +16).
  void seal(std::uint64_t index, bool final, std::initializer_list<ByteView> aad, ByteView in, std::uint8_t* out) {
    start(index, final, aad);
    int len = 0;
    if (!in.empty() &&
        (EVP_EncryptUpdate(ctx_, out, &len, in.data(), static_cast<int>(in.size())) != 1 ||
         static_cast<std::size_t>(len) != in.size())) {
      throw_internal_openssl("aes-256-gcm: encrypt");
    }
    int tail = 0;
    if (EVP_EncryptFinal_ex(ctx_, out + in.size(), &tail) != 1 || tail != 0) {
      throw_internal_openssl("aes-256-gcm: encrypt final");
    }
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagSize), out + in.size()) != 1) {
      throw_internal_openssl("aes-256-gcm: get tag");
    }
  }

  // Decrypts record = ciphertext || tag into out[0, record.size() - 16). Returns false if the tag
  // does not verify (out then holds unauthenticated bytes the caller must not use).
  bool open(std::uint64_t index, bool final, std::initializer_list<ByteView> aad, ByteView record,
            std::uint8_t* out) {
    ByteView ct = record.first(record.size() - kTagSize);
    start(index, final, aad);
    int len = 0;
    if (!ct.empty() && (EVP_DecryptUpdate(ctx_, out, &len, ct.data(), static_cast<int>(ct.size())) != 1 ||
                        static_cast<std::size_t>(len) != ct.size())) {
      throw_internal_openssl("aes-256-gcm: decrypt");
    }
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagSize),
                            const_cast<std::uint8_t*>(record.data() + ct.size())) != 1) {
      throw_internal_openssl("aes-256-gcm: set tag");
    }
    int tail = 0;
    bool ok = EVP_DecryptFinal_ex(ctx_, out + ct.size(), &tail) > 0;
    ERR_clear_error();
    return ok;
  }

 private:
  void start(std::uint64_t index, bool final, std::initializer_list<ByteView> aad_parts) {
    std::uint8_t nonce[kNonceSize] = {};
    put_u64be(nonce, index);
    nonce[kNonceSize - 1] = final ? 1 : 0;
    if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, encrypt_ ? 1 : 0) != 1) {
      throw_internal_openssl("aes-256-gcm: set nonce");
    }
    for (ByteView aad : aad_parts) {
      int len = 0;
      if (!aad.empty() &&
          EVP_CipherUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
        throw_internal_openssl("aes-256-gcm: aad");
      }
    }
  }

  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool encrypt_;
};

// The per-object key: HKDF-SHA256(master, salt, "pgvault object v<version>").
std::array<std::uint8_t, 32> object_key(const MasterKey& master, const std::uint8_t* salt, std::uint8_t version) {
  return hkdf_sha256(master, ByteView(salt, kSaltSize), version == kFormatV1 ? kObjectKeyInfoV1 : kObjectKeyInfoV2);
}

// v2: the first 4 bytes of HKDF-SHA256(master, salt, "pgvault key id v2"), stored in the header so a
// reader tells a wrong key (Auth) from an altered or moved object (Corruption).
std::array<std::uint8_t, kKeyIdSize> key_id(const MasterKey& master, const std::uint8_t* salt) {
  auto k = hkdf_sha256(master, ByteView(salt, kSaltSize), kKeyIdInfo);
  std::array<std::uint8_t, kKeyIdSize> id{};
  std::memcpy(id.data(), k.data(), id.size());
  OPENSSL_cleanse(k.data(), k.size());
  return id;
}

struct ZstdCDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// The first error a stage threw; later calls rethrow it instead of running on a broken state.
class FailureLatch {
 public:
  template <typename F>
  void run(F&& f) {
    if (failure_) throw *failure_;
    try {
      f();
    } catch (const Error& e) {
      failure_ = e;
      throw;
    } catch (const std::exception& e) {
      failure_ = Error(ErrorKind::Internal, e.what());
      throw *failure_;
    }
  }

 private:
  std::optional<Error> failure_;
};

}  // namespace

std::string Digest::hex() const { return to_hex(sha256); }

std::string Digest::describe() const {
  return std::string(keyed ? "hmac-sha256 " : "sha256 ") + hex() + ", " + std::to_string(size) + " bytes";
}

Digest keyed_claim(const MasterKey& master, const Digest& plain, std::string_view name) {
  auto k = hkdf_sha256(master, {}, kDigestKeyInfo);
  Bytes msg(plain.sha256.size() + 8 + name.size());
  std::memcpy(msg.data(), plain.sha256.data(), plain.sha256.size());
  put_u64be(msg.data() + plain.sha256.size(), plain.size);
  std::memcpy(msg.data() + plain.sha256.size() + 8, name.data(), name.size());
  Digest claim{hmac_sha256(k, msg), plain.size, true};
  OPENSSL_cleanse(k.data(), k.size());
  return claim;
}

// ---------------------------------------------------------------------------------------------------
// Encoder

struct ObjectEncoder::Impl {
  Sink& out;
  bool encrypt = false;
  std::uint32_t chunk_size = 0;
  Header header{};
  const MasterKey* master = nullptr;
  std::string name;  // the storage key (encrypted only)
  Bytes name_aad;    // its AAD block

  Sha256 sha;
  std::uint64_t size = 0;

  std::unique_ptr<ZSTD_CCtx, ZstdCDeleter> zstd;
  Bytes zbuf;  // compressor output when it must go on to the cipher

  std::optional<ChunkCipher> cipher;
  Bytes chunk;  // the current chunk of the body stream, not sealed yet (it may be the final one)
  std::size_t chunk_len = 0;
  std::uint64_t chunk_index = 0;

  Bytes obuf;  // bytes for `out`, handed over in writes of about kWriteSize
  std::size_t olen = 0;
  std::uint64_t encoded = 0;

  Digest digest;
  bool finished = false;
  FailureLatch latch;

  Impl(Sink& o, const EncodeOptions& opts) : out(o) {
    if (opts.compression != Compression::None && opts.compression != Compression::Zstd) {
      throw Error(ErrorKind::InvalidInput, "encode: unknown compression method " +
                                               std::to_string(static_cast<int>(opts.compression)));
    }
    encrypt = opts.key != nullptr;
    std::memcpy(header.data(), kHeaderMagic, sizeof kHeaderMagic);
    header[4] = kFormatVersion;
    header[5] = static_cast<std::uint8_t>(opts.compression);
    header[6] = static_cast<std::uint8_t>(encrypt ? Encryption::Aes256Gcm : Encryption::None);

    std::size_t obuf_size = kWriteSize;
    if (encrypt) {
      if (opts.chunk_size == 0 || opts.chunk_size > kMaxChunkSize) {
        throw Error(ErrorKind::InvalidInput, "encode: chunk size must be 1.." + std::to_string(kMaxChunkSize) +
                                                 " (got " + std::to_string(opts.chunk_size) + ")");
      }
      chunk_size = opts.chunk_size;
      master = opts.key;
      name = opts.bound_name;
      if (!valid_name(name)) {
        throw Error(ErrorKind::InvalidInput, "encode: an encrypted object needs the storage key it is written under "
                                             "(1.." + std::to_string(kMaxNameSize) + " bytes, got " +
                                                 std::to_string(name.size()) + ")");
      }
      name_aad = name_block(name);
      random_bytes(std::span<std::uint8_t>(header.data() + kSaltOffset, kSaltSize));
      put_u32be(header.data() + kChunkSizeOffset, chunk_size);
      auto id = key_id(*master, header.data() + kSaltOffset);
      std::memcpy(header.data() + kKeyIdOffset, id.data(), id.size());
      auto key = object_key(*master, header.data() + kSaltOffset, kFormatVersion);
      cipher.emplace(key, true);
      OPENSSL_cleanse(key.data(), key.size());
      chunk.resize(chunk_size);
      // A whole number of sealed chunks per downstream write.
      std::size_t record = std::size_t{chunk_size} + kTagSize;
      obuf_size = (kWriteSize + record - 1) / record * record;
    }

    if (opts.compression == Compression::Zstd) {
      zstd.reset(ZSTD_createCCtx());
      if (!zstd) throw Error(ErrorKind::Internal, "encode: out of memory creating a zstd context");
      check_zstd(ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_compressionLevel, opts.level), "set level");
      check_zstd(ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_checksumFlag, 1), "set checksum flag");
      if (opts.threads > 0) {
        // A libzstd built without threads refuses this; compressing in this thread is still correct.
        (void)ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_nbWorkers, opts.threads);
        if (opts.job_size > 0) {
          (void)ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_jobSize, static_cast<int>(opts.job_size));
        }
      }
      if (encrypt) zbuf.resize(ZSTD_CStreamOutSize());
    }

    obuf.resize(obuf_size);
    emit(header);
  }

  static void check_zstd(std::size_t r, std::string_view what) {
    if (ZSTD_isError(r)) {
      throw Error(ErrorKind::Internal, "encode: zstd " + std::string(what) + ": " + ZSTD_getErrorName(r));
    }
  }

  void flush() {
    if (olen == 0) return;
    out.write(ByteView(obuf.data(), olen));
    encoded += olen;
    olen = 0;
  }

  void emit(ByteView d) {
    if (d.size() <= obuf.size() - olen) {
      std::memcpy(obuf.data() + olen, d.data(), d.size());
      olen += d.size();
      return;
    }
    flush();
    if (d.size() >= obuf.size()) {
      out.write(d);
      encoded += d.size();
      return;
    }
    std::memcpy(obuf.data(), d.data(), d.size());
    olen = d.size();
  }

  void seal(ByteView in, bool final, ByteView trailer_auth) {
    std::size_t need = in.size() + kTagSize;
    if (obuf.size() - olen < need) flush();
    cipher->seal(chunk_index, final, {header, name_aad, trailer_auth}, in, obuf.data() + olen);
    olen += need;
    ++chunk_index;
  }

  // Bytes of the body stream (compressed or raw plaintext).
  void body(ByteView d) {
    if (!encrypt) {
      emit(d);
      return;
    }
    while (!d.empty()) {
      if (chunk_len == chunk_size) {  // more bytes follow, so the buffered full chunk is not the final one
        seal(ByteView(chunk.data(), chunk_len), false, {});
        chunk_len = 0;
      }
      if (chunk_len == 0 && d.size() > chunk_size) {  // a whole non-final chunk straight from the input
        seal(d.first(chunk_size), false, {});
        d = d.subspan(chunk_size);
        continue;
      }
      std::size_t n = std::min<std::size_t>(chunk_size - chunk_len, d.size());
      std::memcpy(chunk.data() + chunk_len, d.data(), n);
      chunk_len += n;
      d = d.subspan(n);
    }
  }

  // Runs the compressor; output goes to the body (or, unencrypted, straight into obuf).
  // Returns what ZSTD_compressStream2 returned last.
  std::size_t compress(ZSTD_inBuffer& in, ZSTD_EndDirective mode) {
    if (!encrypt) {
      if (olen == obuf.size()) flush();
      ZSTD_outBuffer o{obuf.data(), obuf.size(), olen};
      std::size_t r = ZSTD_compressStream2(zstd.get(), &o, &in, mode);
      check_zstd(r, "compress");
      olen = o.pos;
      return r;
    }
    ZSTD_outBuffer o{zbuf.data(), zbuf.size(), 0};
    std::size_t r = ZSTD_compressStream2(zstd.get(), &o, &in, mode);
    check_zstd(r, "compress");
    body(ByteView(zbuf.data(), o.pos));
    return r;
  }

  void write(ByteView p) {
    if (finished) throw Error(ErrorKind::Internal, "encode: write after finish");
    if (p.empty()) return;
    sha.update(p);
    size += p.size();
    if (!zstd) {
      body(p);
      return;
    }
    ZSTD_inBuffer in{p.data(), p.size(), 0};
    while (in.pos < in.size) compress(in, ZSTD_e_continue);
  }

  void finish() {
    if (finished) throw Error(ErrorKind::Internal, "encode: finish called twice");
    if (zstd) {
      ZSTD_inBuffer in{nullptr, 0, 0};
      while (compress(in, ZSTD_e_end) != 0) {
      }
    }
    digest.sha256 = sha.final();
    digest.size = size;
    // Encrypted, the trailer carries the keyed claim: a plaintext SHA-256 in clear would let anyone who
    // can read the bucket confirm a guessed file.
    Trailer trailer = make_trailer(encrypt ? keyed_claim(*master, digest, name) : digest);
    if (encrypt) {
      seal(ByteView(chunk.data(), chunk_len), true, ByteView(trailer.data(), kTrailerAuthSizeV2));
      chunk_len = 0;
    }
    emit(trailer);
    flush();
    out.finish();
    finished = true;
  }
};

ObjectEncoder::ObjectEncoder(Sink& out, const EncodeOptions& opts) : impl_(std::make_unique<Impl>(out, opts)) {}
ObjectEncoder::~ObjectEncoder() = default;

void ObjectEncoder::write(ByteView plaintext) {
  impl_->latch.run([&] { impl_->write(plaintext); });
}

void ObjectEncoder::finish() {
  impl_->latch.run([&] { impl_->finish(); });
}

const Digest& ObjectEncoder::digest() const {
  if (!impl_->finished) throw Error(ErrorKind::Internal, "encode: digest() before finish()");
  return impl_->digest;
}

std::uint64_t ObjectEncoder::encoded_size() const {
  if (!impl_->finished) throw Error(ErrorKind::Internal, "encode: encoded_size() before finish()");
  return impl_->encoded;
}

// ---------------------------------------------------------------------------------------------------
// Decoder

struct ObjectDecoder::Impl {
  Sink& out;
  const MasterKey* key;
  std::string name;  // the storage key the object is read from
  std::string what;
  Bytes name_aad;    // v2 encrypted: its AAD block; empty otherwise

  Header header{};
  std::size_t header_len = 0;
  bool have_header = false;
  ObjectHeader info;

  // Bytes received but not yet processed: always the last kObjectTrailerSize bytes (they may be the
  // trailer), and when encrypted up to one more sealed chunk (it may be the final one).
  Bytes held;
  std::size_t held_len = 0;
  std::size_t record = 0;  // chunk_size + tag when encrypted

  std::optional<ChunkCipher> cipher;
  Bytes plain;  // one opened chunk
  std::uint64_t chunk_index = 0;

  std::unique_ptr<ZSTD_DCtx, ZstdDDeleter> zstd;
  Bytes zout;
  bool frame_done = false;

  Sha256 sha;
  std::uint64_t size = 0;
  Digest digest;
  bool finished = false;
  FailureLatch latch;

  Impl(Sink& o, const MasterKey* k, std::string n, std::string w)
      : out(o), key(k), name(std::move(n)), what(std::move(w)) {}

  std::size_t trailer_auth_size() const {
    return info.version == kFormatV1 ? kTrailerAuthSizeV1 : kTrailerAuthSizeV2;
  }

  [[noreturn]] void corrupt(const std::string& msg) const { throw Error(ErrorKind::Corruption, what + ": " + msg); }

  void parse_header() {
    const std::uint8_t* h = header.data();
    if (std::memcmp(h, kHeaderMagic, sizeof kHeaderMagic) != 0) corrupt("not a pgvault object (bad magic)");
    if (h[4] != kFormatV1 && h[4] != kFormatVersion) {
      corrupt("unsupported object format version " + std::to_string(h[4]) + " (this build reads versions 1 to " +
              std::to_string(kFormatVersion) + ")");
    }
    if (h[5] > static_cast<std::uint8_t>(Compression::Zstd)) {
      corrupt("unknown compression method " + std::to_string(h[5]) + " in the object header");
    }
    if (h[6] > static_cast<std::uint8_t>(Encryption::Aes256Gcm)) {
      corrupt("unknown encryption method " + std::to_string(h[6]) + " in the object header");
    }
    bool has_key_id = h[4] != kFormatV1 && h[6] != static_cast<std::uint8_t>(Encryption::None);
    if (h[7] != 0 || (!has_key_id && (h[28] != 0 || h[29] != 0 || h[30] != 0 || h[31] != 0))) {
      corrupt("corrupted object header (reserved bytes are not zero)");
    }
    info.version = h[4];
    info.compression = static_cast<Compression>(h[5]);
    info.encryption = static_cast<Encryption>(h[6]);
    info.chunk_size = get_u32be(h + kChunkSizeOffset);

    if (info.encryption == Encryption::None) {
      bool salt_zero = std::all_of(h + kSaltOffset, h + kSaltOffset + kSaltSize, [](std::uint8_t b) { return b == 0; });
      if (!salt_zero || info.chunk_size != 0) {
        corrupt("corrupted object header (salt or chunk size set on an unencrypted object)");
      }
      held.resize(kObjectTrailerSize);
    } else {
      if (info.chunk_size == 0 || info.chunk_size > kMaxChunkSize) {
        corrupt("corrupted object header (chunk size " + std::to_string(info.chunk_size) + ")");
      }
      if (key == nullptr) {
        throw Error(ErrorKind::Auth, what + ": object is encrypted but no encryption key is configured");
      }
      if (info.version != kFormatV1) {
        if (!valid_name(name)) {
          throw Error(ErrorKind::Internal, what + ": decoding an encrypted object needs the storage key it is read "
                                                  "from (got " + std::to_string(name.size()) + " bytes)");
        }
        name_aad = name_block(name);
        auto id = key_id(*key, h + kSaltOffset);
        if (std::memcmp(id.data(), h + kKeyIdOffset, id.size()) != 0) {
          throw Error(ErrorKind::Auth,
                      what + ": object was encrypted with another key than the configured one (wrong encryption key)");
        }
      }
      auto k = object_key(*key, h + kSaltOffset, info.version);
      cipher.emplace(k, false);
      OPENSSL_cleanse(k.data(), k.size());
      record = std::size_t{info.chunk_size} + kTagSize;
      held.resize(record + kObjectTrailerSize);
      plain.resize(info.chunk_size);
    }

    if (info.compression == Compression::Zstd) {
      zstd.reset(ZSTD_createDCtx());
      if (!zstd) throw Error(ErrorKind::Internal, what + ": out of memory creating a zstd context");
      std::size_t r = ZSTD_DCtx_setParameter(zstd.get(), ZSTD_d_windowLogMax, kWindowLogMax);
      if (ZSTD_isError(r)) {
        throw Error(ErrorKind::Internal, what + ": zstd set window limit: " + ZSTD_getErrorName(r));
      }
      zout.resize(ZSTD_DStreamOutSize());
    }
    have_header = true;
  }

  // Verified plaintext.
  void plaintext(ByteView d) {
    if (d.empty()) return;
    sha.update(d);
    size += d.size();
    out.write(d);
  }

  // Bytes of the body stream (authenticated when encrypted).
  void body(ByteView d) {
    if (!zstd) {
      plaintext(d);
      return;
    }
    ZSTD_inBuffer in{d.data(), d.size(), 0};
    while (in.pos < in.size) {
      if (frame_done) corrupt("unexpected data after the end of the compressed stream");
      ZSTD_outBuffer o{zout.data(), zout.size(), 0};
      std::size_t r = ZSTD_decompressStream(zstd.get(), &o, &in);
      if (ZSTD_isError(r)) corrupt(std::string("corrupted compressed stream (") + ZSTD_getErrorName(r) + ")");
      plaintext(ByteView(zout.data(), o.pos));
      if (r == 0) frame_done = true;
    }
  }

  void open_chunk(ByteView rec, bool final, ByteView trailer_auth) {
    if (!cipher->open(chunk_index, final, {header, name_aad, trailer_auth}, rec, plain.data())) {
      if (chunk_index == 0 && info.version == kFormatV1) {
        throw Error(ErrorKind::Auth,
                    what + ": decryption failed on the first chunk: wrong encryption key or corrupted object");
      }
      if (chunk_index == 0) {  // v2: the key id matched, so the key is right
        corrupt("authentication failed on chunk 0: the object was altered, or was not written under the name " +
                name);
      }
      corrupt("authentication failed on chunk " + std::to_string(chunk_index));
    }
    ++chunk_index;
    body(ByteView(plain.data(), rec.size() - kTagSize));
  }

  void hold(ByteView d) {
    std::memcpy(held.data() + held_len, d.data(), d.size());
    held_len += d.size();
  }

  void write_plain(ByteView in) {
    // Pass everything on except the last kObjectTrailerSize bytes seen so far.
    if (held_len + in.size() <= kObjectTrailerSize) {
      hold(in);
      return;
    }
    std::size_t release = held_len + in.size() - kObjectTrailerSize;
    std::size_t from_held = std::min(release, held_len);
    if (from_held > 0) {
      body(ByteView(held.data(), from_held));
      std::memmove(held.data(), held.data() + from_held, held_len - from_held);
      held_len -= from_held;
      release -= from_held;
    }
    body(in.first(release));
    hold(in.subspan(release));
  }

  void write_encrypted(ByteView in) {
    // A chunk is opened only once more than record + trailer bytes follow its start, i.e. when it
    // cannot be the final chunk.
    while (!in.empty()) {
      if (held_len + in.size() <= record + kObjectTrailerSize) {
        hold(in);
        return;
      }
      if (held_len == 0) {
        open_chunk(in.first(record), false, {});
        in = in.subspan(record);
      } else if (held_len <= record) {
        std::size_t take = record - held_len;
        hold(in.first(take));
        in = in.subspan(take);
        held_len = 0;
        open_chunk(ByteView(held.data(), record), false, {});
      } else {
        open_chunk(ByteView(held.data(), record), false, {});
        std::memmove(held.data(), held.data() + record, held_len - record);
        held_len -= record;
      }
    }
  }

  void write(ByteView in) {
    if (finished) throw Error(ErrorKind::Internal, what + ": decoder written after finish");
    if (!have_header) {
      std::size_t take = std::min(kObjectHeaderSize - header_len, in.size());
      std::memcpy(header.data() + header_len, in.data(), take);
      header_len += take;
      in = in.subspan(take);
      if (header_len < kObjectHeaderSize) return;
      parse_header();
    }
    if (in.empty()) return;
    if (cipher) {
      write_encrypted(in);
    } else {
      write_plain(in);
    }
  }

  void finish() {
    if (finished) throw Error(ErrorKind::Internal, what + ": decoder finished twice");
    if (!have_header) {
      if (header_len >= sizeof kHeaderMagic && std::memcmp(header.data(), kHeaderMagic, sizeof kHeaderMagic) != 0) {
        corrupt("not a pgvault object (bad magic)");
      }
      corrupt(header_len == 0 ? "truncated object (empty)" : "truncated object (incomplete header)");
    }
    std::size_t min_len = kObjectTrailerSize + (cipher ? kTagSize : 0);
    if (held_len < min_len) corrupt("truncated object");
    const std::uint8_t* t = held.data() + held_len - kObjectTrailerSize;
    Digest claimed = read_trailer(t, what);
    if (claimed.keyed && info.version == kFormatV1) corrupt("corrupted object trailer (reserved bytes are not zero)");
    if (info.version != kFormatV1 && claimed.keyed != (info.encryption != Encryption::None)) {
      corrupt("corrupted object trailer (its digest kind does not match the object's encryption)");
    }
    if (cipher) {
      open_chunk(ByteView(held.data(), held_len - kObjectTrailerSize), true, ByteView(t, trailer_auth_size()));
    }
    held_len = 0;
    if (zstd) {
      // Drain what the decompressor still holds, then require the end of the frame.
      while (!frame_done) {
        ZSTD_inBuffer in{nullptr, 0, 0};
        ZSTD_outBuffer o{zout.data(), zout.size(), 0};
        std::size_t r = ZSTD_decompressStream(zstd.get(), &o, &in);
        if (ZSTD_isError(r)) corrupt(std::string("corrupted compressed stream (") + ZSTD_getErrorName(r) + ")");
        plaintext(ByteView(zout.data(), o.pos));
        if (r == 0) {
          frame_done = true;
        } else if (o.pos == 0) {
          corrupt("truncated object (the compressed stream ends before the end of its frame)");
        }
      }
    }
    digest.sha256 = sha.final();
    digest.size = size;
    if (digest.size != claimed.size) {
      corrupt("plaintext size mismatch (expected " + std::to_string(claimed.size) + ", got " +
              std::to_string(digest.size) + ")");
    }
    Digest got = claimed.keyed ? keyed_claim(*key, digest, name) : digest;
    if (got.sha256 != claimed.sha256) {
      corrupt(std::string(claimed.keyed ? "keyed " : "") + "plaintext digest mismatch (expected " + claimed.hex() +
              ", got " + got.hex() + ")");
    }
    finished = true;
    out.finish();
  }
};

ObjectDecoder::ObjectDecoder(Sink& out, const MasterKey* key, std::string bound_name, std::string what)
    : impl_(std::make_unique<Impl>(out, key, std::move(bound_name), std::move(what))) {}
ObjectDecoder::~ObjectDecoder() = default;

void ObjectDecoder::write(ByteView encoded) {
  impl_->latch.run([&] { impl_->write(encoded); });
}

void ObjectDecoder::finish() {
  impl_->latch.run([&] { impl_->finish(); });
}

const Digest& ObjectDecoder::digest() const {
  if (!impl_->finished) throw Error(ErrorKind::Internal, impl_->what + ": digest() before finish()");
  return impl_->digest;
}

const ObjectHeader& ObjectDecoder::header() const {
  if (!impl_->have_header) throw Error(ErrorKind::Internal, impl_->what + ": header() before the header arrived");
  return impl_->info;
}

// ---------------------------------------------------------------------------------------------------

Digest parse_trailer(ByteView last_bytes, const std::string& what) {
  if (last_bytes.size() < kObjectTrailerSize) {
    throw Error(ErrorKind::Corruption, what + ": too short to hold an object trailer (" +
                                           std::to_string(last_bytes.size()) + " bytes)");
  }
  return read_trailer(last_bytes.data() + last_bytes.size() - kObjectTrailerSize, what);
}

Bytes encode_bytes(ByteView plaintext, const EncodeOptions& opts) {
  Bytes out;
  VectorSink sink(out);
  ObjectEncoder enc(sink, opts);
  enc.write(plaintext);
  enc.finish();
  return out;
}

Bytes decode_bytes(ByteView encoded, const MasterKey* key, const std::string& bound_name, const std::string& what) {
  Bytes out;
  VectorSink sink(out);
  ObjectDecoder dec(sink, key, bound_name, what);
  dec.write(encoded);
  dec.finish();
  return out;
}

}  // namespace pgvault
