// The encoding half of the object codec: plaintext -> digest -> zstd -> AES-256-GCM chunks -> header,
// body and trailer (docs/FORMAT.md).
// ZSTD_getCParams (the level's own window): exported by every libzstd 1.4+, declared in the advanced API.
#define ZSTD_STATIC_LINKING_ONLY
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

constexpr std::size_t kWriteSize = 256 * 1024;  // size of the writes handed to the downstream sink

struct ZstdCDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

}  // namespace

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
    header = new_header(opts.compression, encrypt);
    std::size_t obuf_size = kWriteSize;
    if (encrypt) {
      start_encryption(opts);
      // A whole number of sealed chunks per downstream write.
      std::size_t record = std::size_t{chunk_size} + kTagSize;
      obuf_size = (kWriteSize + record - 1) / record * record;
    }
    if (opts.compression == Compression::Zstd) start_compression(opts);
    obuf.resize(obuf_size);
    emit(header);
  }

  // Checks the chunk size and name, fills salt, chunk size and key id into the header, and keys the cipher.
  void start_encryption(const EncodeOptions& opts) {
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
    wipe(key);
    chunk.resize(chunk_size);
  }

  void start_compression(const EncodeOptions& opts) {
    zstd.reset(ZSTD_createCCtx());
    if (!zstd) throw Error(ErrorKind::Internal, "encode: out of memory creating a zstd context");
    check_zstd(ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_compressionLevel, opts.level), "set level");
    check_zstd(ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_checksumFlag, 1), "set checksum flag");
    if (opts.window_log > 0) {
      const int level_window = static_cast<int>(ZSTD_getCParams(opts.level, 0, 0).windowLog);
      check_zstd(ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_windowLog, std::min(level_window, opts.window_log)),
                 "set window");
    }
    if (opts.table_log > 0) cap_tables(opts.level, opts.table_log);
    if (opts.threads > 0) {
      // A libzstd built without threads refuses this; compressing in this thread is still correct.
      (void)ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_nbWorkers, opts.threads);
      if (opts.job_size > 0) {
        (void)ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_jobSize, static_cast<int>(opts.job_size));
      }
    }
    if (encrypt) zbuf.resize(ZSTD_CStreamOutSize());
  }

  // Smaller match tables at the double-fast levels: they stay in the core's cache instead of missing it
  // on most probes, which is much faster, and on a small window the larger tables found little more.
  void cap_tables(int level, int table_log) {
    const ZSTD_compressionParameters p = ZSTD_getCParams(level, 0, 0);
    if (p.strategy != ZSTD_dfast) return;
    check_zstd(ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_hashLog, std::min(static_cast<int>(p.hashLog), table_log)),
               "set hash log");
    check_zstd(ZSTD_CCtx_setParameter(zstd.get(), ZSTD_c_chainLog, std::min(static_cast<int>(p.chainLog), table_log)),
               "set chain log");
  }

  // The compressor's context and the body buffers are done with once the trailer is out: freed before
  // out.finish(), whose commit may take long (an upload, a store's settle wait) while other objects encode.
  void release_buffers() {
    zstd.reset();
    Bytes().swap(zbuf);
    Bytes().swap(chunk);
    Bytes().swap(obuf);
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
    release_buffers();
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

Bytes encode_bytes(ByteView plaintext, const EncodeOptions& opts) {
  Bytes out;
  VectorSink sink(out);
  ObjectEncoder enc(sink, opts);
  enc.write(plaintext);
  enc.finish();
  return out;
}

}  // namespace pgvault
