#include "common/backup/backup.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader
#include <zstd.h>

#include "common/crypto/crypto.h"
#include "common/pg/crc32c.h"
#include "common/repo/backup_bundles.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

std::string hex_of(const std::string& s) { return to_hex(sha256(as_bytes(s))); }
// Our manifest's form: the value, most significant digit first.
std::string crc_of(const std::string& s) { return crc32c_hex(crc32c(as_bytes(s))); }
// PostgreSQL's backup_manifest form on a little-endian server: the value's bytes as they lie in memory.
std::string server_crc(const std::string& s) {
  std::uint32_t v = crc32c(as_bytes(s));
  std::uint8_t b[4] = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
                       static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
  return to_hex(ByteView(b, 4));
}

// A manifest in PostgreSQL's format, with its checksum.
std::string server_manifest(const std::vector<std::tuple<std::string, std::uint64_t, std::string>>& files,
                            const std::string& algorithm = "CRC32C") {
  std::string body = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n";
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto& [path, size, sum] = files[i];
    body += std::string(i ? ",\n" : "") + "{ \"Path\": \"" + path + "\", \"Size\": " + std::to_string(size) +
            ", \"Last-Modified\": \"2026-11-21 16:00:00 GMT\", \"Checksum-Algorithm\": \"" + algorithm +
            "\", \"Checksum\": \"" + sum + "\" }";
  }
  body += " ],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n";
  return body + "\"Manifest-Checksum\": \"" + hex_of(body) + "\"}\n";
}

ReceivedFile file(const std::string& path, const std::string& content, std::uint32_t ts = 0) {
  return {path, ts, crc32c(as_bytes(content)), content.size()};
}

TEST(ServerManifest, MatchingFilesPass) {
  std::vector<ReceivedFile> files = {file("backup_label", "label"), file("base/1/1259", "data"),
                                     file("PG_15_202209061/5/16390", "ts", 16384)};
  std::string m = server_manifest({{"backup_label", 5, server_crc("label")},
                                   {"base/1/1259", 4, server_crc("data")},
                                   {"pg_tblspc/16384/PG_15_202209061/5/16390", 2, server_crc("ts")}});
  EXPECT_NO_THROW(verify_server_manifest(m, files));
}

TEST(ServerManifest, Crc32cIsTheValuesBytesInMemoryOrder) {
  // CRC-32C("123456789") = 0xe3069283: ours "e3069283", a little-endian server prints "839206e3" (the
  // integration test checks this against a real server), a big-endian one "e3069283".
  EXPECT_EQ(crc_of("123456789"), "e3069283");
  EXPECT_EQ(server_crc("123456789"), "839206e3");
  std::vector<ReceivedFile> files = {file("a", "123456789")};
  EXPECT_NO_THROW(verify_server_manifest(server_manifest({{"a", 9, "839206e3"}}), files));
  EXPECT_NO_THROW(verify_server_manifest(server_manifest({{"a", 9, "839206E3"}}), files));
  EXPECT_NO_THROW(verify_server_manifest(server_manifest({{"a", 9, "e3069283"}}), files));
}

void expect_corruption(const std::string& m, const std::vector<ReceivedFile>& files, const std::string& needle) {
  try {
    verify_server_manifest(m, files);
    FAIL() << "no error, expected " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ServerManifest, DifferencesAreCorruption) {
  std::vector<ReceivedFile> files = {file("a", "aaa"), file("b", "bbb")};
  expect_corruption(server_manifest({{"a", 3, server_crc("aaa")}, {"b", 4, server_crc("bbb")}}), files,
                    "b has 3 bytes, the server's manifest says 4");
  // A wrong CRC-32C names the file, our value and the server's.
  expect_corruption(server_manifest({{"a", 3, server_crc("aaa")}, {"b", 3, server_crc("bbX")}}), files,
                    "b CRC-32C " + crc_of("bbb") + " differs from the server's manifest " + server_crc("bbX"));
  expect_corruption(server_manifest({{"a", 3, server_crc("aaa")}, {"b", 3, hex_of("bbb")}}, "SHA256"), files,
                    "b: the server's manifest has no CRC32C checksum (SHA256)");
  expect_corruption(server_manifest({{"a", 3, server_crc("aaa")}}), files, "b received but not in");
  expect_corruption(
      server_manifest({{"a", 3, server_crc("aaa")}, {"b", 3, server_crc("bbb")}, {"c", 1, server_crc("c")}}), files,
      "c is in the server's manifest but was not received");
  std::string m = server_manifest({{"a", 3, server_crc("aaa")}, {"b", 3, server_crc("bbb")}});
  m[m.find("WAL-Ranges") + 2] ^= 1;
  expect_corruption(m, files, "checksum mismatch");
  expect_corruption("not json", files, "not valid JSON");
}

// The server's "Files" entries are taken out of the parse one by one: many entries all arrive, an
// entry the parse cannot use is refused (after the checksum, so damage in transit is named as such), and
// anything in "Files" that is not an entry, or a second "Files", is refused.
TEST(ServerManifest, EntriesTakenOneByOne) {
  std::vector<ReceivedFile> files;
  std::vector<std::tuple<std::string, std::uint64_t, std::string>> entries;
  for (int i = 0; i < 300; ++i) {
    const std::string path = "base/5/" + std::to_string(16384 + i), content = "c" + std::to_string(i);
    files.push_back(file(path, content));
    entries.emplace_back(path, content.size(), server_crc(content));
  }
  EXPECT_NO_THROW(verify_server_manifest(server_manifest(entries), files));
  entries.pop_back();
  expect_corruption(server_manifest(entries), files, "base/5/16683 received but not in");

  std::vector<ReceivedFile> one = {file("a", "aaa")};
  const std::string good = server_manifest({{"a", 3, server_crc("aaa")}});
  auto with = [](std::string m, const std::string& from, const std::string& to) {
    const auto at = m.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    m.replace(at, from.size(), to);
    const auto body_end = m.find("\"Manifest-Checksum\"");
    return m.substr(0, body_end) + "\"Manifest-Checksum\": \"" + hex_of(m.substr(0, body_end)) + "\"}\n";
  };
  expect_corruption(with(good, "\"Size\"", "\"Sighs\""), one, "unexpected content");
  expect_corruption(with(good, "\"Files\": [\n", "\"Files\": [\n7, "), one, "unexpected content");
  expect_corruption(with(good, "\"Files\"", "\"Filez\""), one, "unexpected content");
  // A second "Files" (here empty) would replace the first: refused.
  expect_corruption(with(good, "\"WAL-Ranges\"", "\"Files\": [],\n\"WAL-Ranges\""), one, "\"Files\" twice");
  // A damaged entry and a damaged checksum: the checksum is what is reported.
  std::string damaged = good;
  damaged.replace(damaged.find("\"Size\""), 6, "\"Sighs\"");
  expect_corruption(damaged, one, "checksum mismatch");
}

// The server's entries are checked as the parse hands them over, against the received files sorted by
// their path in the manifest: the problems still come in the received files' order, then the server's
// files not received by path; of a path listed twice the last entry counts (and it is named once);
// tablespace files of several tablespaces are found by their "pg_tblspc/<oid>/" paths.
TEST(ServerManifest, ProblemsInTheirOrder) {
  std::vector<ReceivedFile> files = {file("z", "zz"), file("x", "x1", 16384), file("a", "aa"),
                                     file("x", "x22", 163840), file("PG_15/1/2", "ts", 1638)};
  const std::vector<std::tuple<std::string, std::uint64_t, std::string>> good = {
      {"pg_tblspc/163840/x", 3, server_crc("x22")}, {"a", 5, server_crc("aa")},   {"a", 2, server_crc("aa")},
      {"pg_tblspc/1638/PG_15/1/2", 2, server_crc("ts")}, {"pg_tblspc/16384/x", 2, server_crc("x1")},
      {"z", 2, server_crc("zz")}};
  EXPECT_NO_THROW(verify_server_manifest(server_manifest(good), files));

  auto bad = good;
  bad.pop_back();                                   // z: received, not listed
  std::get<1>(bad[4]) = 3;                          // pg_tblspc/16384/x: wrong size
  bad.emplace_back("c", 1, server_crc("c"));        // c and b: listed, not received (c twice)
  bad.emplace_back("b", 1, server_crc("b"));
  bad.emplace_back("c", 1, server_crc("c"));
  expect_corruption(server_manifest(bad), files,
                    "(4 problem(s)): z received but not in the server's manifest; pg_tblspc/16384/x has 2 bytes, the "
                    "server's manifest says 3; b is in the server's manifest but was not received; c is in the "
                    "server's manifest but was not received");
  std::swap(bad[1], bad[2]);  // a's last entry now says 5 bytes
  expect_corruption(server_manifest(bad), files, "a has 2 bytes, the server's manifest says 5");
}

TEST(PgSize, Units) {
  EXPECT_EQ(parse_pg_size("16MB"), 16u << 20);
  EXPECT_EQ(parse_pg_size("1GB"), 1u << 30);
  EXPECT_EQ(parse_pg_size("64kB"), 64u << 10);
  EXPECT_THROW(parse_pg_size("MB"), Error);
  EXPECT_THROW(parse_pg_size("16XB"), Error);
}

TEST(BundleUploader, UploadsDecodableBundlesInOrder) {
  testing::MemoryStorage storage;
  BundleUploaderOptions o;
  o.workers = 3;
  o.max_open = 4;
  o.encode.compression = Compression::Zstd;
  BundleUploader up(storage, "L", o, nullptr);
  std::vector<std::string> contents;
  for (int b = 0; b < 10; ++b) {
    up.open(static_cast<std::uint64_t>(b), b == 5 ? 64 : 1 << 20, b == 5);
    std::string c;
    for (int i = 0; i < 50; ++i) c += "bundle " + std::to_string(b) + " line " + std::to_string(i) + "\n";
    up.write(as_bytes(c.substr(0, 100)));
    up.write(as_bytes(c.substr(100)));
    contents.push_back(c);
  }
  auto bundles = up.finish();
  ASSERT_EQ(bundles.size(), 10u);
  for (std::size_t b = 0; b < 10; ++b) {
    EXPECT_EQ(bundles[b].index, b);
    EXPECT_EQ(bundles[b].plain_size, contents[b].size());
    EXPECT_EQ(bundles[b].sha256, hex_of(contents[b]));
    Bytes stored = storage.objects.at(keys::backup_bundle("L", b));
    EXPECT_EQ(stored.size(), bundles[b].stored_size);
    Bytes plain = decode_bytes(stored, nullptr, keys::backup_bundle("L", b), "bundle");
    EXPECT_EQ(std::string(plain.begin(), plain.end()), contents[b]);
  }
}

// base-push compresses its bundles with the repository's window (kEncodeWindowLog, 512 KiB) instead of the
// level's own (2 MiB at level 3): a bundle encoding, and later decoding, holds 1.5 MiB less, and on real
// tables it is faster and no larger. Both a shared bundle and a single large file's (zstd threads).
TEST(BundleUploader, BackupBundlesUsePutObjectsCompressionWindow) {
  auto owned = std::make_unique<testing::MemoryStorage>();
  testing::MemoryStorage* storage = owned.get();
  Repository repo(std::move(owned), Config{});
  BackupOptions bo;
  bo.parallel = 2;
  BundleUploaderOptions o = backup_uploader_options(repo, bo);
  ASSERT_EQ(o.encode.compression, Compression::Zstd);
  Bytes plain(4 << 20);
  for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
  BundleUploader up(*storage, "L", o, nullptr);
  for (int b = 0; b < 2; ++b) {
    up.open(static_cast<std::uint64_t>(b), b == 0 ? 8 << 20 : 1 << 20, b == 1);
    up.write(plain);
  }
  up.finish();
  for (std::uint64_t b = 0; b < 2; ++b) {
    const Bytes& stored = storage->objects.at(keys::backup_bundle("L", b));
    ZSTD_frameHeader h{};
    ASSERT_EQ(ZSTD_getFrameHeader(&h, stored.data() + kObjectHeaderSize, stored.size() - kObjectHeaderSize), 0u);
    EXPECT_EQ(h.windowSize, 1ull << kEncodeWindowLog) << "bundle " << b;
    EXPECT_EQ(decode_bytes(stored, nullptr, keys::backup_bundle("L", b), "bundle"), plain);
  }
}

// A store whose create-if-absent is checked after a settle time (S3 without conditional writes) hands
// the bundles' checks to the uploader: finish() runs them all before it returns, and the first that
// fails is its error (base-push then writes no manifest). With the options' confirm_later they are the
// caller's to run.
TEST(BundleUploader, FinishRunsTheDeferredCreateChecksUnlessTheCallerDoes) {
  BundleUploaderOptions o;
  o.workers = 2;
  o.max_open = 3;
  o.encode.compression = Compression::None;
  const std::vector<std::string> all{keys::backup_bundle("L", 0), keys::backup_bundle("L", 1),
                                     keys::backup_bundle("L", 2)};
  auto upload_three = [&](testing::CheckedLaterStorage& storage) {
    auto up = std::make_unique<BundleUploader>(storage, "L", o, nullptr);
    for (std::uint64_t b = 0; b < 3; ++b) {
      up->open(b, 1 << 20, false);
      up->write(as_bytes("bundle " + std::to_string(b)));
    }
    return up;
  };
  for (const std::string& refuse : {std::string(), keys::backup_bundle("L", 1)}) {
    testing::CheckedLaterStorage storage;
    storage.refuse = refuse;
    auto up = upload_three(storage);
    if (refuse.empty()) {
      ASSERT_EQ(up->finish().size(), 3u);
      std::sort(storage.checked.begin(), storage.checked.end());
      EXPECT_EQ(storage.checked, all);
    } else {
      EXPECT_THROW_KIND(up->finish(), ErrorKind::Duplicate);
    }
  }
  DeferredConfirms callers;
  o.confirm_later = &callers;
  testing::CheckedLaterStorage storage;
  auto up = upload_three(storage);
  ASSERT_EQ(up->finish().size(), 3u);
  EXPECT_TRUE(storage.checked.empty());
  callers.run();
  std::sort(storage.checked.begin(), storage.checked.end());
  EXPECT_EQ(storage.checked, all);
}

TEST(BundleUploader, AbortLeavesNothingUncommitted) {
  testing::MemoryStorage storage;
  BundleUploaderOptions o;
  o.workers = 2;
  o.max_open = 3;
  o.encode.compression = Compression::None;
  {
    BundleUploader up(storage, "L", o, nullptr);
    up.open(0, 1 << 20, false);
    up.write(as_bytes(std::string("partial")));
    up.abort();
  }
  EXPECT_TRUE(storage.objects.empty());
}

TEST(BundleUploader, StorageFailureSurfacesToProducer) {
  testing::MemoryStorage mem;
  struct Failing : testing::MemoryStorage {
    std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions&) override {
      throw Error(ErrorKind::Transient, "cannot put " + key);
    }
  } storage;
  BundleUploaderOptions o;
  o.workers = 1;
  o.max_open = 2;
  BundleUploader up(storage, "L", o, nullptr);
  up.open(0, 16, false);
  bool thrown = false;
  try {
    for (int i = 0; i < 1000; ++i) up.write(as_bytes(std::string(64, 'x')));
    up.finish();
  } catch (const Error& e) {
    thrown = true;
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
  }
  EXPECT_TRUE(thrown);
}


// ------------------------------------------------------------------------------------ label claim

// A fake clock: wait_until(t) jumps to t and records it.
struct FakeClock {
  std::int64_t t = 1700000000;  // 2023-11-14T22:13:20Z
  std::vector<std::int64_t> waits;
  ClaimOptions options() {
    ClaimOptions o;
    o.now = [this] { return t; };
    o.wait_until = [this](std::int64_t until) {
      waits.push_back(until);
      t = std::max(t, until);
    };
    o.attempts = 3;
    return o;
  }
};

std::string label_at(std::int64_t t) { return make_backup_label(t, false); }

TEST(BackupClaim, SameSecondGetsTheNextSecondsLabel) {
  testing::MemoryStorage st;
  FakeClock clock;
  BackupClaim a = claim_backup_label(st, clock.options());
  clock.t = 1700000000;  // the second run starts in the same second
  BackupClaim b = claim_backup_label(st, clock.options());
  EXPECT_EQ(a.label, label_at(1700000000));
  EXPECT_EQ(a.label, "20231114T221320Z-F");
  EXPECT_EQ(b.label, label_at(1700000001));  // still a full backup's label, of the second it started in
  EXPECT_EQ(clock.waits, std::vector<std::int64_t>{1700000001});
  EXPECT_NE(a.token, b.token);
  EXPECT_TRUE(claim_holds(st, a));
  EXPECT_TRUE(claim_holds(st, b));
  Bytes text = st.objects.at(keys::backup_claim(a.label));
  EXPECT_NE(std::string(text.begin(), text.end()).find("\"token\":\"" + a.token + "\""), std::string::npos);
}

// A store without conditional writes: our create-if-absent put "succeeds", then another run's PUT lands
// on the same key. The read-back sees the other token: the label is given up without deleting anything.
class RacingStorage : public testing::MemoryStorage {
 public:
  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    struct W : ObjectWriter {
      std::unique_ptr<ObjectWriter> inner;
      RacingStorage* s;
      std::string key;
      void write(ByteView d) override { inner->write(d); }
      void commit() override {
        inner->commit();
        if (s->races > 0 && key.ends_with("/claim")) {
          --s->races;
          std::string other = "{\"token\":\"someone-else\"}";
          std::lock_guard g(s->mu);
          s->objects[key] = Bytes(other.begin(), other.end());
        }
      }
      void abort() noexcept override { inner->abort(); }
    };
    auto w = std::make_unique<W>();
    w->inner = MemoryStorage::put(key, opts);
    w->s = this;
    w->key = key;
    return w;
  }
  int races = 1;
};

TEST(BackupClaim, ClaimOverwrittenBeforeTheReadBackIsGivenUp) {
  RacingStorage st;
  FakeClock clock;
  BackupClaim c = claim_backup_label(st, clock.options());
  EXPECT_EQ(c.label, label_at(1700000001));
  Bytes other = st.objects.at(keys::backup_claim(label_at(1700000000)));
  EXPECT_EQ(std::string(other.begin(), other.end()), "{\"token\":\"someone-else\"}");  // left alone
  EXPECT_FALSE(claim_holds(st, BackupClaim{label_at(1700000000), c.token}));
  EXPECT_TRUE(claim_holds(st, c));
}

TEST(BackupClaim, LabelHoldingAnotherRunsObjectsIsGivenUp) {
  testing::MemoryStorage st;
  st.objects[keys::backup_bundle(label_at(1700000000), 0)] = Bytes{1, 2, 3};  // an older pgvault's run
  FakeClock clock;
  BackupClaim c = claim_backup_label(st, clock.options());
  EXPECT_EQ(c.label, label_at(1700000001));
  EXPECT_TRUE(st.objects.count(keys::backup_bundle(label_at(1700000000), 0)));
  EXPECT_FALSE(st.objects.count(keys::backup_claim(label_at(1700000000))));  // our claim there removed
}

// On a store that checks create-if-absent later, a label given up keeps its claim's check out of the
// caller's set (that claim was removed, or is another run's): only the label taken is checked before the
// manifest, so the run that moved on to the next second's label can still commit.
TEST(BackupClaim, OnlyTheClaimTakenHandsOverItsCheck) {
  testing::CheckedLaterStorage st;
  st.objects[keys::backup_bundle(label_at(1700000000), 0)] = Bytes{1, 2, 3};  // an older pgvault's run
  FakeClock clock;
  DeferredConfirms later;
  ClaimOptions o = clock.options();
  o.confirm_later = &later;
  BackupClaim c = claim_backup_label(st, o);
  EXPECT_EQ(c.label, label_at(1700000001));
  EXPECT_TRUE(st.checked.empty());
  later.run();
  EXPECT_EQ(st.checked, std::vector<std::string>{keys::backup_claim(c.label)});
}

TEST(BackupClaim, NoFreeLabelIsAConflict) {
  testing::MemoryStorage st;
  FakeClock clock;
  for (int i = 0; i < 3; ++i) {
    clock.t = 1700000000;
    claim_backup_label(st, clock.options());
  }
  clock.t = 1700000000;
  try {
    claim_backup_label(st, clock.options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Conflict);
    EXPECT_NE(std::string(e.what()).find(label_at(1700000000)), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pgvault
