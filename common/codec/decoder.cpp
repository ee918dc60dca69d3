// The decoding half of the object codec: header, AEAD chunks, zstd frame and trailer, each verified
// (docs/FORMAT.md 1.6). Plaintext goes downstream as it is verified; finish() gives the verdict.
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "common/base/errors.h"
#include "common/codec/chunk_cipher.h"
#include "common/codec/codec.h"
#include "common/codec/failure_latch.h"
#include "common/codec/object_format.h"
#include "common/crypto/wipe.h"

namespace pgvault {

using namespace codec_format;

namespace {

constexpr int kWindowLogMax = 27;  // 128 MiB: more than any level up to 22 uses

struct ZstdDDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

}  // namespace

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
    info = read_header(header, what);
    if (info.encryption == Encryption::None) {
      held.resize(kObjectTrailerSize);
    } else {
      start_decryption();
    }
    if (info.compression == Compression::Zstd) start_decompression();
    have_header = true;
  }

  // Checks that the key and the name can open this object, and keys the cipher.
  void start_decryption() {
    if (key == nullptr) {
      throw Error(ErrorKind::Auth, what + ": object is encrypted but no encryption key is configured");
    }
    const std::uint8_t* salt = header.data() + kSaltOffset;
    if (info.version != kFormatV1) {
      if (!valid_name(name)) {
        throw Error(ErrorKind::Internal, what + ": decoding an encrypted object needs the storage key it is read "
                                                "from (got " + std::to_string(name.size()) + " bytes)");
      }
      name_aad = name_block(name);
      auto id = key_id(*key, salt);
      if (std::memcmp(id.data(), header.data() + kKeyIdOffset, id.size()) != 0) {
        throw Error(ErrorKind::Auth,
                    what + ": object was encrypted with another key than the configured one (wrong encryption key)");
      }
    }
    auto k = object_key(*key, salt, info.version);
    cipher.emplace(k, false);
    wipe(k);
    record = std::size_t{info.chunk_size} + kTagSize;
    held.resize(record + kObjectTrailerSize);
    plain.resize(info.chunk_size);
  }

  void start_decompression() {
    zstd.reset(ZSTD_createDCtx());
    if (!zstd) throw Error(ErrorKind::Internal, what + ": out of memory creating a zstd context");
    std::size_t r = ZSTD_DCtx_setParameter(zstd.get(), ZSTD_d_windowLogMax, kWindowLogMax);
    if (ZSTD_isError(r)) {
      throw Error(ErrorKind::Internal, what + ": zstd set window limit: " + ZSTD_getErrorName(r));
    }
    zout.resize(ZSTD_DStreamOutSize());
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
    if (!have_header) truncated_header();
    Digest claimed = open_trailer();
    if (zstd) drain_decompressor();
    digest.sha256 = sha.final();
    digest.size = size;
    verify_claim(claimed);
    finished = true;
    out.finish();
  }

  // The object ended before its header did.
  [[noreturn]] void truncated_header() const {
    if (header_len >= sizeof kHeaderMagic && std::memcmp(header.data(), kHeaderMagic, sizeof kHeaderMagic) != 0) {
      corrupt("not a pgvault object (bad magic)");
    }
    corrupt(header_len == 0 ? "truncated object (empty)" : "truncated object (incomplete header)");
  }

  // Reads the trailer from the held bytes and, encrypted, opens the final chunk it authenticates.
  Digest open_trailer() {
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
    return claimed;
  }

  // Drains what the decompressor still holds, then requires the end of the frame.
  void drain_decompressor() {
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

  // The plaintext seen against the trailer's claim: its size, then its digest (keyed when the claim is).
  void verify_claim(const Digest& claimed) const {
    if (digest.size != claimed.size) {
      corrupt("plaintext size mismatch (expected " + std::to_string(claimed.size) + ", got " +
              std::to_string(digest.size) + ")");
    }
    Digest got = claimed.keyed ? keyed_claim(*key, digest, name) : digest;
    if (got.sha256 != claimed.sha256) {
      corrupt(std::string(claimed.keyed ? "keyed " : "") + "plaintext digest mismatch (expected " + claimed.hex() +
              ", got " + got.hex() + ")");
    }
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

Bytes decode_bytes(ByteView encoded, const MasterKey* key, const std::string& bound_name, const std::string& what) {
  Bytes out;
  VectorSink sink(out);
  ObjectDecoder dec(sink, key, bound_name, what);
  dec.write(encoded);
  dec.finish();
  return out;
}

}  // namespace pgvault
