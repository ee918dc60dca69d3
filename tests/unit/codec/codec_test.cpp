#include "common/codec/codec.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <ostream>
#include <random>
#include <string>

#include "common/base/errors.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

constexpr std::size_t kChunk = kDefaultChunkSize;

MasterKey test_key(std::uint8_t first = 0) {
  Bytes b(32);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(first + i);
  return MasterKey(b);
}

const MasterKey& key() {
  static const MasterKey k = test_key();
  return k;
}

Bytes random_data(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

// Text-like data that zstd compresses well but not to nothing.
Bytes compressible_data(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  static const char* words[] = {"insert ", "into ", "wal ", "segment ", "0000000100000000000000", "lsn ", "\n", "xid "};
  Bytes b;
  b.reserve(n + 32);
  while (b.size() < n) {
    const char* w = words[rng() % 8];
    b.insert(b.end(), w, w + std::strlen(w));
    if (rng() % 4 == 0) b.push_back(static_cast<std::uint8_t>('0' + rng() % 10));
  }
  b.resize(n);
  return b;
}

// The storage key the test objects are bound to (and the name errors show).
const std::string kName = "test/object";

EncodeOptions options(Compression c, bool encrypt, std::uint32_t chunk = kDefaultChunkSize) {
  EncodeOptions o;
  o.compression = c;
  o.key = encrypt ? &key() : nullptr;
  o.chunk_size = chunk;
  o.bound_name = kName;
  return o;
}

// Records what reaches it, including whether finish() was called.
class RecordingSink final : public Sink {
 public:
  void write(ByteView d) override {
    ASSERT_FALSE(finished);
    data.insert(data.end(), d.begin(), d.end());
    ++writes;
    max_write = std::max(max_write, d.size());
  }
  void finish() override {
    ASSERT_FALSE(finished);
    finished = true;
  }
  Bytes data;
  std::size_t writes = 0;
  std::size_t max_write = 0;
  bool finished = false;
};

// Feeds `data` to `sink` in pieces whose sizes cycle through `pieces`.
void feed(Sink& sink, ByteView data, std::initializer_list<std::size_t> pieces) {
  std::size_t pos = 0;
  auto it = pieces.begin();
  while (pos < data.size()) {
    std::size_t n = std::min(*it, data.size() - pos);
    sink.write(data.subspan(pos, n));
    pos += n;
    if (++it == pieces.end()) it = pieces.begin();
  }
}

Bytes encode_pieces(ByteView plain, const EncodeOptions& o, std::initializer_list<std::size_t> pieces,
                    Digest* digest = nullptr) {
  RecordingSink sink;
  ObjectEncoder enc(sink, o);
  feed(enc, plain, pieces);
  enc.finish();
  EXPECT_TRUE(sink.finished);
  EXPECT_EQ(enc.encoded_size(), sink.data.size());
  if (digest) *digest = enc.digest();
  return sink.data;
}

// Decodes `obj`; returns the error kind, or nullopt on success (plaintext in *out).
std::optional<ErrorKind> try_decode(ByteView obj, const MasterKey* k, Bytes* out = nullptr,
                                    std::string* message = nullptr, const std::string& name = kName) {
  RecordingSink sink;
  try {
    ObjectDecoder dec(sink, k, name, name);
    feed(dec, obj, {4096, 13, 70000});
    dec.finish();
  } catch (const Error& e) {
    EXPECT_FALSE(sink.finished) << "downstream finished although decoding failed: " << e.what();
    if (message) *message = e.what();
    return e.kind();
  }
  EXPECT_TRUE(sink.finished);
  if (out) *out = sink.data;
  return std::nullopt;
}

using testing::expect_error;

bool is_verification_error(std::optional<ErrorKind> k) {
  return k && (*k == ErrorKind::Corruption || *k == ErrorKind::Auth);
}

std::size_t chunks_for(std::size_t body_size, std::size_t chunk) {
  return body_size == 0 ? 1 : (body_size + chunk - 1) / chunk;
}

// --- round trips -------------------------------------------------------------------------------------

struct Case {
  Compression compression;
  bool encrypt;
  std::size_t size;
  bool compressible;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << (c.compression == Compression::Zstd ? "zstd" : "none") << (c.encrypt ? "+aes" : "") << " " << c.size
      << (c.compressible ? " text" : " random");
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return std::string(c.compression == Compression::Zstd ? "zstd" : "none") + (c.encrypt ? "_aes" : "_plain") +
         "_" + std::to_string(c.size) + (c.compressible ? "_text" : "_random");
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (Compression c : {Compression::None, Compression::Zstd}) {
    for (bool e : {false, true}) {
      for (std::size_t n : {std::size_t{0}, std::size_t{1}, kChunk - 1, kChunk, kChunk + 1}) {
        cases.push_back({c, e, n, false});
      }
      cases.push_back({c, e, 3 << 20, false});
      cases.push_back({c, e, 3 << 20, true});
    }
  }
  return cases;
}

class RoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(RoundTrip, EncodeDecode) {
  const Case& c = GetParam();
  Bytes plain = c.compressible ? compressible_data(c.size, 7) : random_data(c.size, 7);
  EncodeOptions o = options(c.compression, c.encrypt);

  RecordingSink enc_sink;
  ObjectEncoder enc(enc_sink, o);
  feed(enc, plain, {1, 7, 4093, 65537, 3, 200001});
  enc.finish();
  const Bytes& obj = enc_sink.data;
  ASSERT_TRUE(enc_sink.finished);
  EXPECT_EQ(enc.encoded_size(), obj.size());
  EXPECT_EQ(enc.digest().size, plain.size());
  EXPECT_EQ(enc.digest().sha256, sha256(plain));
  // Writes downstream are few and large, not one per input piece.
  EXPECT_LE(enc_sink.writes, obj.size() / (128 * 1024) + 2) << "writes: " << enc_sink.writes;

  if (c.compression == Compression::None) {
    std::size_t expected = kObjectHeaderSize + plain.size() + kObjectTrailerSize;
    if (c.encrypt) expected += 16 * chunks_for(plain.size(), kChunk);
    EXPECT_EQ(obj.size(), expected);
  }
  if (c.compressible && c.compression == Compression::Zstd) {
    EXPECT_LT(obj.size(), plain.size() / 3);
  }

  RecordingSink dec_sink;
  ObjectDecoder dec(dec_sink, &key(), kName, "test/object");
  feed(dec, obj, {5, 65536 + 16 + 48, 1, 999, 131072});
  dec.finish();
  EXPECT_TRUE(dec_sink.finished);
  EXPECT_TRUE(dec_sink.data == plain);
  EXPECT_EQ(dec.digest(), enc.digest());
  EXPECT_EQ(dec.header().compression, c.compression);
  EXPECT_EQ(dec.header().encryption, c.encrypt ? Encryption::Aes256Gcm : Encryption::None);
  EXPECT_EQ(dec.header().chunk_size, c.encrypt ? kChunk : 0u);

  // The whole object at once, and through the convenience helpers.
  EXPECT_TRUE(decode_bytes(obj, &key(), kName, "x") == plain);
  EXPECT_TRUE(decode_bytes(encode_bytes(plain, o), &key(), kName, "x") == plain);
}

INSTANTIATE_TEST_SUITE_P(AllCombinations, RoundTrip, ::testing::ValuesIn(all_cases()), case_name);

TEST(Codec, SmallChunkSizes) {
  for (std::uint32_t chunk : {1u, 2u, 15u, 16u, 17u, 48u, 49u, 100u}) {
    for (Compression c : {Compression::None, Compression::Zstd}) {
      Bytes plain = random_data(3000, chunk);
      Bytes obj = encode_pieces(plain, options(c, true, chunk), {1, 5, 300});
      if (c == Compression::None) {
        EXPECT_EQ(obj.size(), kObjectHeaderSize + plain.size() + 16 * chunks_for(plain.size(), chunk) +
                                  kObjectTrailerSize);
      }
      Bytes out;
      ASSERT_EQ(try_decode(obj, &key(), &out), std::nullopt) << chunk;
      EXPECT_TRUE(out == plain);
    }
  }
}

TEST(Codec, DecodeByteByByte) {
  for (bool encrypt : {false, true}) {
    for (Compression c : {Compression::None, Compression::Zstd}) {
      Bytes plain = compressible_data(5000, 3);
      Bytes obj = encode_bytes(plain, options(c, encrypt, 100));
      RecordingSink sink;
      ObjectDecoder dec(sink, &key(), kName, "test/object");
      for (std::uint8_t b : obj) dec.write(ByteView(&b, 1));
      dec.finish();
      EXPECT_TRUE(sink.data == plain);
      EXPECT_TRUE(sink.finished);
    }
  }
}

TEST(Codec, ZstdThreads) {
  Bytes plain = compressible_data(3 << 20, 11);
  EncodeOptions o = options(Compression::Zstd, true);
  o.threads = 2;
  o.level = 5;
  Bytes out;
  ASSERT_EQ(try_decode(encode_bytes(plain, o), &key(), &out), std::nullopt);
  EXPECT_TRUE(out == plain);
  // Small jobs (what wal-push uses): several jobs per object, still one frame that decodes exactly.
  o.job_size = 1 << 20;
  o.key = nullptr;
  out.clear();
  ASSERT_EQ(try_decode(encode_bytes(plain, o), nullptr, &out), std::nullopt);
  EXPECT_TRUE(out == plain);
}

TEST(Codec, DownstreamWritesAreBuffered) {
  for (bool encrypt : {false, true}) {
    for (Compression c : {Compression::None, Compression::Zstd}) {
      Bytes plain = random_data(4 << 20, 5);
      RecordingSink sink;
      ObjectEncoder enc(sink, options(c, encrypt));
      feed(enc, plain, {1000});  // 4000+ small writes in
      enc.finish();
      EXPECT_LE(sink.writes, 40u) << "encrypt=" << encrypt;
      EXPECT_LE(sink.max_write, 512u * 1024);
    }
  }
}

TEST(Codec, EncryptedObjectsDifferEachTime) {
  Bytes plain = compressible_data(1000, 1);
  Bytes a = encode_bytes(plain, options(Compression::Zstd, true));
  Bytes b = encode_bytes(plain, options(Compression::Zstd, true));
  EXPECT_NE(a, b);  // random salt, so a different object key
  EXPECT_TRUE(std::search(a.begin(), a.end(), plain.begin(), plain.begin() + 16) == a.end());
}

TEST(Codec, BadOptions) {
  Bytes out;
  VectorSink sink(out);
  expect_error([&] { ObjectEncoder e(sink, options(Compression::None, true, 0)); }, ErrorKind::InvalidInput);
  expect_error([&] { ObjectEncoder e(sink, options(Compression::None, true, kMaxChunkSize + 1)); },
               ErrorKind::InvalidInput);
  EncodeOptions o = options(static_cast<Compression>(7), false);
  expect_error([&] { ObjectEncoder e(sink, o); }, ErrorKind::InvalidInput);
  EXPECT_TRUE(out.empty());
}

TEST(Codec, MisuseIsReported) {
  Bytes out;
  VectorSink sink(out);
  ObjectEncoder enc(sink, options(Compression::Zstd, false));
  expect_error([&] { (void)enc.digest(); }, ErrorKind::Internal);
  enc.write(as_bytes("x"));
  enc.finish();
  expect_error([&] { enc.write(as_bytes("y")); }, ErrorKind::Internal);

  Bytes plain;
  VectorSink psink(plain);
  ObjectDecoder dec(psink, nullptr, kName, "obj");
  expect_error([&] { (void)dec.header(); }, ErrorKind::Internal);
  dec.write(ByteView(out).first(10));
  expect_error([&] { (void)dec.header(); }, ErrorKind::Internal);
  dec.write(ByteView(out).subspan(10));
  EXPECT_EQ(dec.header().compression, Compression::Zstd);
  expect_error([&] { (void)dec.digest(); }, ErrorKind::Internal);
  dec.finish();
  EXPECT_EQ(plain, (Bytes{'x'}));
}

// --- layout ------------------------------------------------------------------------------------------

TEST(Layout, HeaderAndTrailerBytes) {
  Bytes plain = compressible_data(100000, 2);
  Bytes enc = encode_bytes(plain, options(Compression::Zstd, true));
  EXPECT_EQ(std::string(enc.begin(), enc.begin() + 4), "PGVO");
  EXPECT_EQ(enc[4], 2);  // version
  EXPECT_EQ(enc[5], 1);  // zstd
  EXPECT_EQ(enc[6], 1);  // aes-256-gcm
  EXPECT_EQ(enc[7], 0);
  EXPECT_NE(Bytes(enc.begin() + 8, enc.begin() + 24), Bytes(16, 0));  // salt
  EXPECT_EQ(Bytes(enc.begin() + 24, enc.begin() + 28), (Bytes{0x00, 0x01, 0x00, 0x00}));  // 65536 BE
  auto id = hkdf_sha256(key(), ByteView(enc).subspan(8, 16), "pgvault key id v2");
  EXPECT_EQ(Bytes(enc.begin() + 28, enc.begin() + 32), Bytes(id.begin(), id.begin() + 4));  // key id

  Bytes plainobj = encode_bytes(plain, options(Compression::None, false));
  ASSERT_EQ(plainobj.size(), 32 + plain.size() + 48);
  EXPECT_EQ(Bytes(plainobj.begin(), plainobj.begin() + 8), (Bytes{'P', 'G', 'V', 'O', 2, 0, 0, 0}));
  EXPECT_EQ(Bytes(plainobj.begin() + 8, plainobj.begin() + 32), Bytes(24, 0));  // no salt, chunk size 0
  EXPECT_TRUE(Bytes(plainobj.begin() + 32, plainobj.end() - 48) == plain);        // body is the plaintext

  // Trailer: the plaintext SHA-256 unencrypted; encrypted, HMAC-SHA256(HKDF(master, "", "pgvault digest
  // v2"), sha256 || u64be(size) || name), and the digest kind byte says which.
  const Sha256Digest sha = sha256(plain);
  Bytes msg(sha.begin(), sha.end());
  for (std::uint8_t b : {0, 0, 0, 0, 0, 0x01, 0x86, 0xa0}) msg.push_back(b);
  msg.insert(msg.end(), kName.begin(), kName.end());
  const Sha256Digest keyed = hmac_sha256(hkdf_sha256(key(), {}, "pgvault digest v2"), msg);
  for (const Bytes* obj : {&enc, &plainobj}) {
    const std::uint8_t* t = obj->data() + obj->size() - 48;
    const Sha256Digest& want = obj == &enc ? keyed : sha;
    EXPECT_EQ(Bytes(t, t + 32), Bytes(want.begin(), want.end()));
    EXPECT_EQ(Bytes(t + 32, t + 40), (Bytes{0, 0, 0, 0, 0, 0x01, 0x86, 0xa0}));  // 100000 BE
    EXPECT_EQ(Bytes(t + 40, t + 44), (Bytes{obj == &enc ? std::uint8_t{1} : std::uint8_t{0}, 0, 0, 0}));
    EXPECT_EQ(std::string(t + 44, t + 48), "PGVT");
  }
}

TEST(Layout, ZstdBodyIsOneFrameWithChecksum) {
  Bytes plain = compressible_data(200000, 4);
  Bytes obj = encode_bytes(plain, options(Compression::Zstd, false));
  ByteView body = ByteView(obj).subspan(32, obj.size() - 32 - 48);
  EXPECT_EQ(ZSTD_findFrameCompressedSize(body.data(), body.size()), body.size());
  // Frame magic 0xFD2FB528 (little-endian), then the frame header descriptor: bit 2 = content checksum.
  ASSERT_GT(body.size(), 5u);
  EXPECT_EQ(Bytes(body.begin(), body.begin() + 4), (Bytes{0x28, 0xb5, 0x2f, 0xfd}));
  EXPECT_EQ(body[4] & 0x04, 0x04);
  Bytes out(plain.size() + 10);
  EXPECT_EQ(ZSTD_decompress(out.data(), out.size(), body.data(), body.size()), plain.size());
  out.resize(plain.size());
  EXPECT_TRUE(out == plain);
}

TEST(Layout, ParseTrailer) {
  Bytes plain = random_data(70000, 9);
  Digest d;
  Bytes obj = encode_pieces(plain, options(Compression::Zstd, true), {100000}, &d);
  EXPECT_EQ(d.sha256, sha256(plain));
  EXPECT_FALSE(d.keyed);  // the encoder reports the plaintext digest; the trailer has the keyed claim
  const Digest claim = keyed_claim(key(), d, kName);
  EXPECT_TRUE(claim.keyed);
  EXPECT_EQ(claim.size, d.size);
  EXPECT_EQ(parse_trailer(ByteView(obj).last(48), "o"), claim);
  EXPECT_EQ(parse_trailer(obj, "o"), claim);
  EXPECT_FALSE(parse_trailer(obj, "o") == d);
  EXPECT_EQ(d.hex(), to_hex(sha256(plain)));
  EXPECT_EQ(d.describe(), "sha256 " + d.hex() + ", 70000 bytes");
  EXPECT_EQ(claim.describe(), "hmac-sha256 " + claim.hex() + ", 70000 bytes");
  Bytes plainobj = encode_bytes(plain, options(Compression::Zstd, false));
  EXPECT_EQ(parse_trailer(plainobj, "o"), d);
  expect_error([&] { parse_trailer(ByteView(obj).last(47), "o/k"); }, ErrorKind::Corruption, "o/k: ");
  Bytes bad(obj.end() - 48, obj.end());
  bad[47] ^= 1;
  expect_error([&] { parse_trailer(bad, "o/k"); }, ErrorKind::Corruption, "o/k: ");
  bad[47] ^= 1;
  bad[41] = 1;
  expect_error([&] { parse_trailer(bad, "o/k"); }, ErrorKind::Corruption, "reserved");
  bad[41] = 0;
  bad[40] = 2;  // digest kind: only 0 and 1 exist
  expect_error([&] { parse_trailer(bad, "o/k"); }, ErrorKind::Corruption, "reserved");
}

// --- tampering ---------------------------------------------------------------------------------------

struct Variant {
  Compression compression;
  bool encrypt;
};
const Variant kVariants[] = {{Compression::None, false},
                             {Compression::Zstd, false},
                             {Compression::None, true},
                             {Compression::Zstd, true}};

TEST(Tamper, EveryByteOfASmallObject) {
  int harmless = 0;
  for (Variant v : kVariants) {
    Bytes plain = random_data(300, 1);
    Bytes obj = encode_bytes(plain, options(v.compression, v.encrypt, 64));  // several chunks
    for (std::size_t i = 0; i < obj.size(); ++i) {
      for (std::uint8_t mask : {0x01, 0x80}) {
        Bytes bad = obj;
        bad[i] ^= mask;
        Bytes out;
        auto k = try_decode(bad, &key(), &out);
        if (!k && !v.encrypt && v.compression == Compression::Zstd && i < 32 + 6) {
          // Unencrypted zstd: a few bits of the frame header (the window size) do not change the output;
          // the object still decodes to exactly the right plaintext, which the trailer digest proved.
          EXPECT_TRUE(out == plain) << "byte " << i;
          ++harmless;
          continue;
        }
        EXPECT_TRUE(is_verification_error(k)) << "byte " << i << " of " << obj.size() << " zstd="
                                              << (v.compression == Compression::Zstd) << " aes=" << v.encrypt;
      }
    }
  }
  EXPECT_LE(harmless, 2);
}

TEST(Tamper, RegionsOfALargeObject) {
  for (Variant v : kVariants) {
    Bytes plain = random_data(300000, 2);
    Bytes obj = encode_bytes(plain, options(v.compression, v.encrypt));
    std::size_t n = obj.size();
    std::vector<std::size_t> positions;
    for (std::size_t i = 0; i < 32; ++i) positions.push_back(i);                 // header
    for (std::size_t i = n - 48; i < n; ++i) positions.push_back(i);             // trailer
    for (std::size_t i : {32ul, 33ul, 1000ul, n / 2, n - 49, n - 60, n - 64}) positions.push_back(i);  // body
    if (v.encrypt) {
      for (std::size_t i = 0; i < 16; ++i) positions.push_back(32 + kChunk + i);      // tag of chunk 0
      for (std::size_t i = 0; i < 16; ++i) positions.push_back(n - 48 - 16 + i);      // tag of the final chunk
      positions.push_back(32 + 2 * (kChunk + 16) + 5);                                 // inside chunk 2
    }
    for (std::size_t pos : positions) {
      Bytes bad = obj;
      bad[pos] ^= 0x04;
      auto k = try_decode(bad, &key());
      EXPECT_TRUE(is_verification_error(k)) << "pos " << pos << " aes=" << v.encrypt;
    }
  }
}

TEST(Tamper, Truncation) {
  for (Variant v : kVariants) {
    Bytes small = encode_bytes(random_data(200, 3), options(v.compression, v.encrypt, 50));
    for (std::size_t len = 0; len < small.size(); ++len) {
      auto k = try_decode(ByteView(small).first(len), &key());
      EXPECT_TRUE(is_verification_error(k)) << "len " << len;
    }
    Bytes big = encode_bytes(compressible_data(1 << 20, 3), options(v.compression, v.encrypt));
    for (std::size_t len = 0; len < big.size(); len += 4999) {
      EXPECT_TRUE(is_verification_error(try_decode(ByteView(big).first(len), &key()))) << "len " << len;
    }
    for (std::size_t cut = 1; cut <= 100; ++cut) {
      EXPECT_TRUE(is_verification_error(try_decode(ByteView(big).first(big.size() - cut), &key())));
    }
    // Appending is no better than truncating.
    Bytes longer = small;
    longer.push_back(0);
    EXPECT_TRUE(is_verification_error(try_decode(longer, &key())));
  }
}

TEST(Tamper, TruncationMessage) {
  std::string msg;
  Bytes obj = encode_bytes(random_data(10, 1), options(Compression::None, false));
  EXPECT_EQ(try_decode(ByteView(obj).first(40), &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("test/object: truncated object"), std::string::npos) << msg;
  EXPECT_EQ(try_decode(ByteView(obj).first(20), &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("test/object: truncated object"), std::string::npos) << msg;
}

// Splits an encrypted, uncompressed object into header, records and trailer.
struct Pieces {
  Bytes header;
  std::vector<Bytes> records;
  Bytes trailer;
  Bytes join() const {
    Bytes out = header;
    for (const Bytes& r : records) out.insert(out.end(), r.begin(), r.end());
    out.insert(out.end(), trailer.begin(), trailer.end());
    return out;
  }
};

Pieces split(const Bytes& obj, std::size_t chunk) {
  Pieces p;
  p.header.assign(obj.begin(), obj.begin() + 32);
  p.trailer.assign(obj.end() - 48, obj.end());
  std::size_t pos = 32;
  std::size_t end = obj.size() - 48;
  while (pos < end) {
    std::size_t n = std::min(chunk + 16, end - pos);
    p.records.emplace_back(obj.begin() + static_cast<std::ptrdiff_t>(pos),
                           obj.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  return p;
}

TEST(Tamper, ChunksSwappedRemovedOrDuplicated) {
  const std::size_t chunk = 1024;
  Bytes plain = random_data(5 * chunk + 100, 4);
  Bytes obj = encode_bytes(plain, options(Compression::None, true, chunk));
  Pieces p = split(obj, chunk);
  ASSERT_EQ(p.records.size(), 6u);
  ASSERT_EQ(p.join(), obj);
  std::string msg;

  Pieces q = p;
  std::swap(q.records[1], q.records[2]);
  EXPECT_EQ(try_decode(q.join(), &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("test/object: authentication failed on chunk 1"), std::string::npos) << msg;

  q = p;
  std::swap(q.records[0], q.records[1]);
  EXPECT_TRUE(is_verification_error(try_decode(q.join(), &key())));

  q = p;
  q.records.erase(q.records.begin() + 3);
  EXPECT_EQ(try_decode(q.join(), &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("chunk 3"), std::string::npos) << msg;

  q = p;
  Bytes duplicate = q.records[2];
  q.records.insert(q.records.begin() + 2, duplicate);
  EXPECT_EQ(try_decode(q.join(), &key()), ErrorKind::Corruption);

  // Dropping the final chunk: the last full chunk is not sealed as final.
  q = p;
  q.records.pop_back();
  EXPECT_EQ(try_decode(q.join(), &key()), ErrorKind::Corruption);

  // A trailer from another object with the same key does not authenticate.
  Bytes other = encode_bytes(random_data(5 * chunk + 100, 5), options(Compression::None, true, chunk));
  q = p;
  q.trailer.assign(other.end() - 48, other.end());
  EXPECT_EQ(try_decode(q.join(), &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("authentication failed on chunk 5"), std::string::npos) << msg;

  // Records of another object (other salt, so other key) do not authenticate either.
  q = p;
  q.records[4] = split(other, chunk).records[4];
  EXPECT_EQ(try_decode(q.join(), &key()), ErrorKind::Corruption);
}

TEST(Tamper, WrongKeyOrNoKey) {
  Bytes obj = encode_bytes(compressible_data(300000, 6), options(Compression::Zstd, true));
  MasterKey other = test_key(1);
  std::string msg;
  EXPECT_EQ(try_decode(obj, &other, nullptr, &msg), ErrorKind::Auth);
  EXPECT_NE(msg.find("test/object: object was encrypted with another key than the configured one (wrong encryption "
                     "key)"),
            std::string::npos)
      << msg;
  EXPECT_EQ(try_decode(obj, nullptr, nullptr, &msg), ErrorKind::Auth);
  EXPECT_NE(msg.find("test/object: object is encrypted but no encryption key is configured"), std::string::npos)
      << msg;
  // An unencrypted object decodes whether or not a key is configured.
  Bytes plainobj = encode_bytes(as_bytes("hello"), options(Compression::Zstd, false));
  EXPECT_EQ(try_decode(plainobj, nullptr), std::nullopt);
  EXPECT_EQ(try_decode(plainobj, &other), std::nullopt);
}

TEST(Tamper, HeaderMessages) {
  Bytes obj = encode_bytes(as_bytes("hello"), options(Compression::Zstd, false));
  std::string msg;
  Bytes bad = obj;
  bad[0] = 'X';
  EXPECT_EQ(try_decode(bad, &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("test/object: not a pgvault object (bad magic)"), std::string::npos) << msg;
  EXPECT_EQ(try_decode(as_bytes("hello world"), &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("not a pgvault object (bad magic)"), std::string::npos) << msg;
  bad = obj;
  bad[4] = 3;
  EXPECT_EQ(try_decode(bad, &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("unsupported object format version 3"), std::string::npos) << msg;
  bad = obj;
  bad[5] = 9;
  EXPECT_EQ(try_decode(bad, &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("unknown compression method 9"), std::string::npos) << msg;
  bad = obj;
  bad[6] = 2;
  EXPECT_EQ(try_decode(bad, &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("unknown encryption method 2"), std::string::npos) << msg;
  bad = obj;
  bad[30] = 1;
  EXPECT_EQ(try_decode(bad, &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;

  // A header claiming a huge chunk size is refused, not allocated.
  Bytes enc = encode_bytes(as_bytes("hello"), options(Compression::Zstd, true));
  enc[24] = 0xff;
  EXPECT_EQ(try_decode(enc, &key(), nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("chunk size"), std::string::npos) << msg;
}

TEST(Tamper, DigestMismatchMessage) {
  Bytes plain = random_data(1000, 8);
  Bytes obj = encode_bytes(plain, options(Compression::None, false));
  obj[100] ^= 1;
  std::string msg;
  RecordingSink sink;
  ObjectDecoder dec(sink, nullptr, "wal/000000010000000000000001", "wal/000000010000000000000001");
  dec.write(obj);
  expect_error([&] { dec.finish(); }, ErrorKind::Corruption,
               "wal/000000010000000000000001: plaintext digest mismatch (expected " + to_hex(sha256(plain)) +
                   ", got ");
  EXPECT_FALSE(sink.finished);
  EXPECT_EQ(sink.data.size(), plain.size());  // plaintext was passed on, but never finished
  // The decoder stays failed.
  expect_error([&] { dec.finish(); }, ErrorKind::Corruption, "digest mismatch");

  // Size field altered (unencrypted, so only the size check can notice).
  obj[100] ^= 1;
  obj[obj.size() - 48 + 39] ^= 1;
  EXPECT_EQ(try_decode(obj, nullptr, nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("plaintext size mismatch (expected 1001, got 1000)"), std::string::npos) << msg;
}

// Rebuilds an unencrypted zstd object around a modified body, with a correct trailer.
Bytes with_body(const Bytes& obj, const Bytes& body) {
  Bytes out(obj.begin(), obj.begin() + 32);
  out.insert(out.end(), body.begin(), body.end());
  out.insert(out.end(), obj.end() - 48, obj.end());
  return out;
}

TEST(Tamper, ZstdFrameMustBeCompleteAndAlone) {
  Bytes plain = compressible_data(50000, 12);
  Bytes obj = encode_bytes(plain, options(Compression::Zstd, false));
  Bytes body(obj.begin() + 32, obj.end() - 48);
  std::string msg;

  // Without its 4-byte checksum the frame yields all the plaintext (digest and size match) but is
  // incomplete.
  Bytes cut(body.begin(), body.end() - 4);
  EXPECT_EQ(try_decode(with_body(obj, cut), nullptr, nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("ends before the end of its frame"), std::string::npos) << msg;

  // Anything after the frame, even a valid empty frame, is refused.
  Bytes extra = body;
  extra.push_back(0);
  EXPECT_EQ(try_decode(with_body(obj, extra), nullptr, nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("after the end of the compressed stream"), std::string::npos) << msg;
  Bytes empty_frame(ZSTD_compressBound(0));
  empty_frame.resize(ZSTD_compress(empty_frame.data(), empty_frame.size(), nullptr, 0, 1));
  extra = body;
  extra.insert(extra.end(), empty_frame.begin(), empty_frame.end());
  EXPECT_EQ(try_decode(with_body(obj, extra), nullptr, nullptr, &msg), ErrorKind::Corruption);

  // An empty body is not a frame.
  EXPECT_EQ(try_decode(with_body(obj, {}), nullptr, nullptr, &msg), ErrorKind::Corruption);
}

// --- golden objects ----------------------------------------------------------------------------------

const std::string kGoldenDir = PGVAULT_TEST_DATA;
// The compressed golden stream is ~43 bytes: a small chunk size makes it span several chunks.
constexpr std::uint32_t kGoldenChunk = 16;

Bytes golden_plaintext() {
  std::string line = "pgvault golden object\n";
  Bytes out;
  while (out.size() < 100 * 1024) out.insert(out.end(), line.begin(), line.end());
  return out;
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const Bytes& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(f.good()) << path;
}

// The name the version 2 golden objects are bound to (docs/FORMAT.md 1.7).
const std::string kGoldenName = "wal/0000000100000000/000000010000000000000007";

// Rewrites the version 2 golden objects. The version 1 ones (golden-zstd-aes.pgvo, golden-zstd.pgvo)
// were written by pgvault before format 2 and cannot be regenerated: they prove old objects still read.
TEST(Golden, Regenerate) {
  const char* env = std::getenv("PGVAULT_REGENERATE_GOLDEN");
  if (env == nullptr || std::string(env) != "1") GTEST_SKIP() << "set PGVAULT_REGENERATE_GOLDEN=1 to rewrite";
  Bytes plain = golden_plaintext();
  EncodeOptions o = options(Compression::Zstd, true, kGoldenChunk);
  o.level = 3;
  o.bound_name = kGoldenName;
  write_file(kGoldenDir + "/golden-v2-zstd-aes.pgvo", encode_bytes(plain, o));
  o.key = nullptr;
  write_file(kGoldenDir + "/golden-v2-zstd.pgvo", encode_bytes(plain, o));
}

// Version 1 (read only): not bound to a name, plaintext SHA-256 in the trailer.
TEST(Golden, EncryptedZstd) {
  Bytes obj = read_file(kGoldenDir + "/golden-zstd-aes.pgvo");
  ASSERT_GT(obj.size(), 80u);
  Bytes plain = golden_plaintext();
  EXPECT_EQ(Bytes(obj.begin(), obj.begin() + 8), (Bytes{'P', 'G', 'V', 'O', 1, 1, 1, 0}));
  EXPECT_EQ(Bytes(obj.begin() + 24, obj.begin() + 32), (Bytes{0, 0, 0, kGoldenChunk, 0, 0, 0, 0}));
  EXPECT_GE(obj.size() - 32 - 48, 2 * (kGoldenChunk + 16) + 16) << "the golden object should span 3+ chunks";
  Digest d = parse_trailer(obj, "golden");
  EXPECT_EQ(d.size, plain.size());
  EXPECT_EQ(d.sha256, sha256(plain));

  Bytes out;
  ASSERT_EQ(try_decode(obj, &key(), &out), std::nullopt);
  EXPECT_TRUE(out == plain);
  EXPECT_EQ(try_decode(obj, nullptr), ErrorKind::Auth);
}

TEST(Golden, Zstd) {
  Bytes obj = read_file(kGoldenDir + "/golden-zstd.pgvo");
  ASSERT_GT(obj.size(), 80u);
  Bytes plain = golden_plaintext();
  EXPECT_EQ(Bytes(obj.begin(), obj.begin() + 8), (Bytes{'P', 'G', 'V', 'O', 1, 1, 0, 0}));
  EXPECT_EQ(Bytes(obj.begin() + 8, obj.begin() + 32), Bytes(24, 0));
  EXPECT_EQ(parse_trailer(obj, "golden"), (Digest{sha256(plain), plain.size()}));
  Bytes out;
  ASSERT_EQ(try_decode(obj, nullptr, &out), std::nullopt);
  EXPECT_TRUE(out == plain);
}

TEST(Golden, V2EncryptedZstd) {
  Bytes obj = read_file(kGoldenDir + "/golden-v2-zstd-aes.pgvo");
  ASSERT_GT(obj.size(), 80u);
  Bytes plain = golden_plaintext();
  EXPECT_EQ(Bytes(obj.begin(), obj.begin() + 8), (Bytes{'P', 'G', 'V', 'O', 2, 1, 1, 0}));
  EXPECT_EQ(Bytes(obj.begin() + 24, obj.begin() + 28), (Bytes{0, 0, 0, kGoldenChunk}));
  auto id = hkdf_sha256(key(), ByteView(obj).subspan(8, 16), "pgvault key id v2");
  EXPECT_EQ(Bytes(obj.begin() + 28, obj.begin() + 32), Bytes(id.begin(), id.begin() + 4));
  EXPECT_GE(obj.size() - 32 - 48, 2 * (kGoldenChunk + 16) + 16) << "the golden object should span 3+ chunks";
  const Digest plain_digest{sha256(plain), plain.size()};
  EXPECT_EQ(parse_trailer(obj, "golden"), keyed_claim(key(), plain_digest, kGoldenName));

  Bytes out;
  ASSERT_EQ(try_decode(obj, &key(), &out, nullptr, kGoldenName), std::nullopt);
  EXPECT_TRUE(out == plain);
  EXPECT_EQ(try_decode(obj, nullptr, nullptr, nullptr, kGoldenName), ErrorKind::Auth);
  EXPECT_EQ(try_decode(obj, &key(), nullptr, nullptr, "wal/0000000100000000/000000010000000000000008"),
            ErrorKind::Corruption);
}

TEST(Golden, V2Zstd) {
  Bytes obj = read_file(kGoldenDir + "/golden-v2-zstd.pgvo");
  ASSERT_GT(obj.size(), 80u);
  Bytes plain = golden_plaintext();
  EXPECT_EQ(Bytes(obj.begin(), obj.begin() + 8), (Bytes{'P', 'G', 'V', 'O', 2, 1, 0, 0}));
  EXPECT_EQ(Bytes(obj.begin() + 8, obj.begin() + 32), Bytes(24, 0));
  EXPECT_EQ(parse_trailer(obj, "golden"), (Digest{sha256(plain), plain.size()}));
  Bytes out;
  ASSERT_EQ(try_decode(obj, nullptr, &out, nullptr, kGoldenName), std::nullopt);
  EXPECT_TRUE(out == plain);
}

// --- binding to the storage key (format 2) ----------------------------------------------------------------

TEST(Binding, EncryptedObjectMovedToAnotherNameFailsAsCorruption) {
  for (Compression c : {Compression::None, Compression::Zstd}) {
    EncodeOptions o = options(c, true, 1000);
    o.bound_name = "wal/0000000100000000/000000010000000000000008";
    Bytes obj = encode_bytes(random_data(5000, 3), o);
    const std::string moved = "wal/0000000100000000/000000010000000000000007";
    std::string msg;
    EXPECT_EQ(try_decode(obj, &key(), nullptr, &msg, moved), ErrorKind::Corruption);
    EXPECT_NE(msg.find(moved + ": authentication failed on chunk 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not written under the name " + moved), std::string::npos) << msg;
    EXPECT_EQ(try_decode(obj, &key(), nullptr, &msg, o.bound_name), std::nullopt) << msg;
    // Also an object of a single chunk (the final one, whose AAD includes the trailer).
    Bytes one = encode_bytes(as_bytes("x"), o);
    EXPECT_EQ(try_decode(one, &key(), nullptr, &msg, moved), ErrorKind::Corruption);
  }
}

TEST(Binding, EncryptedTrailerDoesNotRevealThePlaintextSha256) {
  for (Compression c : {Compression::None, Compression::Zstd}) {
    Bytes plain = compressible_data(200000, 5);
    Bytes obj = encode_bytes(plain, options(c, true));
    const Sha256Digest sha = sha256(plain);
    EXPECT_TRUE(std::search(obj.begin(), obj.end(), sha.begin(), sha.end()) == obj.end());
    Digest claim = parse_trailer(obj, "o");
    EXPECT_TRUE(claim.keyed);
    EXPECT_NE(claim.sha256, sha);
    // The claim depends on the key and the name, so nobody without the key can compute it, and equal
    // content under two names does not show as equal.
    const Digest d{sha, plain.size()};
    EXPECT_EQ(claim, keyed_claim(key(), d, kName));
    EXPECT_NE(claim, keyed_claim(test_key(1), d, kName));
    EXPECT_NE(claim, keyed_claim(key(), d, kName + "x"));
  }
}

TEST(Binding, UnencryptedObjectsAreNotBound) {
  // Nothing to authenticate with: an unencrypted object decodes under any name (FORMAT.md 1.3).
  Bytes obj = encode_bytes(as_bytes("hello"), options(Compression::Zstd, false));
  EXPECT_EQ(try_decode(obj, nullptr, nullptr, nullptr, "another/name"), std::nullopt);
}

TEST(Binding, EncryptingNeedsTheName) {
  Bytes out;
  VectorSink sink(out);
  EncodeOptions o = options(Compression::Zstd, true);
  o.bound_name.clear();
  expect_error([&] { ObjectEncoder e(sink, o); }, ErrorKind::InvalidInput, "storage key");
  o.bound_name = std::string(70000, 'k');
  expect_error([&] { ObjectEncoder e(sink, o); }, ErrorKind::InvalidInput, "storage key");
  EXPECT_TRUE(out.empty());
  // A reader that does not say which name it reads under cannot authenticate a version 2 object.
  Bytes obj = encode_bytes(as_bytes("hello"), options(Compression::Zstd, true));
  EXPECT_EQ(try_decode(obj, &key(), nullptr, nullptr, ""), ErrorKind::Internal);
}

TEST(Binding, TrailerDigestKindMustMatchTheEncryption) {
  // An unencrypted object claiming a keyed digest, or a version 1 object with the kind byte set.
  Bytes obj = encode_bytes(as_bytes("hello"), options(Compression::Zstd, false));
  obj[obj.size() - 8] = 1;
  std::string msg;
  EXPECT_EQ(try_decode(obj, nullptr, nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("digest kind"), std::string::npos) << msg;
  obj[4] = 1;
  EXPECT_EQ(try_decode(obj, nullptr, nullptr, &msg), ErrorKind::Corruption);
  EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
}

// --- speed (not run by default: --gtest_also_run_disabled_tests --gtest_filter='*Bench*') -------------

TEST(Codec, DISABLED_Bench16MiBSegment) {
  Bytes seg = compressible_data(16 << 20, 42);
  // Make it look more like WAL: some incompressible runs.
  Bytes noise = random_data(4 << 20, 43);
  for (std::size_t i = 0; i < noise.size(); i += 8192) {
    std::memcpy(seg.data() + i * 4, noise.data() + i, 2048);
  }
  struct Counting final : Sink {
    void write(ByteView d) override { n += d.size(); }
    void finish() override {}
    std::size_t n = 0;
  };
  auto run = [&](const char* name, const EncodeOptions& o) {
    double best = 1e9;
    std::size_t size = 0;
    for (int rep = 0; rep < 5; ++rep) {
      Counting c;
      auto t0 = std::chrono::steady_clock::now();
      ObjectEncoder enc(c, o);
      feed(enc, seg, {1 << 20});
      enc.finish();
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, ms);
      size = c.n;
    }
    std::printf("%-28s %8.1f ms  %6.1f MiB/s  -> %zu bytes\n", name, best, 16.0 / (best / 1000.0), size);
  };
  auto zstd_only = [&] {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    Bytes out(ZSTD_compressBound(seg.size()));
    double best = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      std::size_t r = ZSTD_compress2(cctx, out.data(), out.size(), seg.data(), seg.size());
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      ASSERT_FALSE(ZSTD_isError(r));
      best = std::min(best, ms);
    }
    ZSTD_freeCCtx(cctx);
    std::printf("%-28s %8.1f ms  %6.1f MiB/s\n", "ZSTD_compress2 alone", best, 16.0 / (best / 1000.0));
  };
  zstd_only();
  run("encode zstd-3", options(Compression::Zstd, false));
  run("encode zstd-3 + aes-256-gcm", options(Compression::Zstd, true));
  run("encode none + aes-256-gcm", options(Compression::None, true));
  run("encode none (sha256 only)", options(Compression::None, false));

  Bytes obj = encode_bytes(seg, options(Compression::Zstd, true));
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    Counting c;
    auto t0 = std::chrono::steady_clock::now();
    ObjectDecoder dec(c, &key(), kName, "bench");
    feed(dec, obj, {1 << 20});
    dec.finish();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("%-28s %8.1f ms  %6.1f MiB/s\n", "decode zstd-3 + aes-256-gcm", best, 16.0 / (best / 1000.0));
}

}  // namespace
}  // namespace pgvault
