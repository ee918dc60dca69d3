#include "common/repo/repo.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <random>

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader
#include <zstd.h>

#include "common/archive/spool.h"
#include "common/base/errors.h"
#include "common/pg/crc32c.h"
#include "common/repo/backups.h"
#include "common/repo/manifest.h"
#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::MemoryStorage;
using pgvault::testing::TempDir;

namespace {

ErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no error";
  return ErrorKind::Internal;
}

// `text` with its first `from` replaced by `to` (a test failure when there is none).
std::string replaced_once(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

// from_json refuses `text` as Corruption "backups/x/manifest.json: malformed manifest (...<needle>...)".
void expect_malformed(const std::string& text, const std::string& needle) {
  try {
    BackupManifest::from_json(text, "backups/x/manifest.json");
    ADD_FAILURE() << "accepted: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
    EXPECT_NE(std::string(e.what()).find("backups/x/manifest.json: malformed manifest ("), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::string write_key(const TempDir& dir, const std::string& name, const std::string& hex) {
  std::string p = dir / name;
  std::ofstream(p) << hex << "\n";
  ::chmod(p.c_str(), 0600);
  return p;
}

}  // namespace

TEST(Keys, LayoutIsDerivedFromTheNameAlone) {
  EXPECT_EQ(keys::wal(*WalFileName::parse("000000010000000A000000FF")), "wal/000000010000000A/000000010000000A000000FF");
  EXPECT_EQ(keys::wal(*WalFileName::parse("00000002.history")), "wal/00000002.history");
  EXPECT_EQ(keys::wal(*WalFileName::parse("000000010000000000000002.partial")),
            "wal/0000000100000000/000000010000000000000002.partial");
  EXPECT_EQ(keys::backup_manifest("20261121T164100Z-F"), "backups/20261121T164100Z-F/manifest.json");
  EXPECT_EQ(keys::backup_bundle("L", 7), "backups/L/bundle-000007");
  EXPECT_EQ(keys::identity(), "pgvault.json");
}

TEST(Identity, CreatedOnceAndForeignClustersRefused) {
  Repository repo(std::make_unique<MemoryStorage>(), Config{});
  EXPECT_FALSE(repo.identity());
  Identity id;
  id.system_identifier = 7301234567890123456ull;
  id.pg_version = 15;
  id.wal_segment_size = 16u << 20;
  Identity stored = repo.ensure_identity(id);
  EXPECT_EQ(stored.system_identifier, id.system_identifier);
  EXPECT_EQ(repo.ensure_identity(id).pg_version, 15);
  Identity other = id;
  other.system_identifier = 1;
  EXPECT_EQ(kind_of([&] { repo.ensure_identity(other); }), ErrorKind::Foreign);
}

TEST(Identity, NewerFormatIsRefused) {
  auto mem = std::make_unique<MemoryStorage>();
  std::string j = R"({"format": 99, "system_identifier": "1", "pg_version": 15, "wal_segment_size": 16777216})";
  mem->objects["pgvault.json"] = Bytes(j.begin(), j.end());
  Repository repo(std::move(mem), Config{});
  EXPECT_EQ(kind_of([&] { repo.identity(); }), ErrorKind::Config);
}

TEST(Identity, NumbersThatAreNotIntegersOfTheirTypeAreCorruption) {
  for (const char* bad : {R"("wal_segment_size": -1)", R"("wal_segment_size": 16777216.5)", R"("wal_segment_size": "16")"}) {
    SCOPED_TRACE(bad);
    auto mem = std::make_unique<MemoryStorage>();
    std::string j = std::string(R"({"format": 1, "system_identifier": "1", "pg_version": 15, )") + bad + "}";
    mem->objects["pgvault.json"] = Bytes(j.begin(), j.end());
    Repository repo(std::move(mem), Config{});
    try {
      repo.identity();
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
      EXPECT_NE(std::string(e.what()).find("\"wal_segment_size\" is not an integer from 0 to 4294967295"),
                std::string::npos) << e.what();
    }
  }
}

TEST(Identity, SystemIdentifierMustBeADecimalNumberInAString) {
  auto identity_of = [](const std::string& sysid) {
    auto mem = std::make_unique<MemoryStorage>();
    std::string j = R"({"format": 1, "system_identifier": )" + sysid + R"(, "pg_version": 15, "wal_segment_size": 16777216})";
    mem->objects["pgvault.json"] = Bytes(j.begin(), j.end());
    Repository repo(std::move(mem), Config{});
    return repo.identity();
  };
  EXPECT_EQ(identity_of("\"7301234567890123456\"")->system_identifier, 7301234567890123456ull);
  // std::stoull wrapped "-1" to the largest value, skipped the space and stopped at the first letter.
  for (const char* bad : {"\"-1\"", "\" 7301234567890123456\"", "\"7301234567890123456x\"", "\"+7\"",
                          "\"18446744073709551616\"", "7301234567890123456", "\"\""}) {
    SCOPED_TRACE(bad);
    try {
      identity_of(bad);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
      EXPECT_NE(std::string(e.what()).find("(\"system_identifier\" is not a decimal number in a string)"),
                std::string::npos) << e.what();
    }
  }
}

TEST(KeyRecord, WrongKeyFailsAtFirstUse) {
  TempDir dir;
  auto storage = std::make_unique<MemoryStorage>();
  MemoryStorage* mem = storage.get();
  Config c;
  c.encryption.method = Encryption::Aes256Gcm;
  c.encryption.key_file = write_key(dir, "k1", std::string(64, 'a'));
  Repository repo(std::move(storage), c);
  ASSERT_NE(repo.write_key(), nullptr);
  repo.put_bytes("x", as_bytes("secret"));
  ASSERT_TRUE(mem->objects.count("pgvault.key.json"));
  auto copy = std::make_unique<MemoryStorage>();
  copy->objects = mem->objects;
  c.encryption.key_file = write_key(dir, "k2", std::string(64, 'b'));
  Repository wrong(std::move(copy), c);
  EXPECT_EQ(kind_of([&] { wrong.read_key(); }), ErrorKind::Auth);
}

// A repository in memory keyed with a passphrase, holding object "x" ("hello") and its key record.
struct PassphraseRepo {
  TempDir dir;
  Config c;
  MemoryStorage* mem = nullptr;
  std::unique_ptr<Repository> repo;

  PassphraseRepo() {
    std::string pf = dir / "pass";
    std::ofstream(pf) << "correct horse\n";
    ::chmod(pf.c_str(), 0600);
    c.encryption.method = Encryption::Aes256Gcm;
    c.encryption.passphrase_file = pf;
    auto storage = std::make_unique<MemoryStorage>();
    mem = storage.get();
    repo = std::make_unique<Repository>(std::move(storage), c);
    repo->put_bytes("x", as_bytes("hello"));
  }
  std::string record() const {
    const Bytes& r = mem->objects.at("pgvault.key.json");
    return std::string(r.begin(), r.end());
  }
  // Another Repository over a copy of the objects, its key record replaced by `record`.
  std::unique_ptr<Repository> copy_with_record(const std::string& record) const {
    auto copy = std::make_unique<MemoryStorage>();
    copy->objects = mem->objects;
    copy->objects["pgvault.key.json"] = Bytes(record.begin(), record.end());
    return std::make_unique<Repository>(std::move(copy), c);
  }
};

TEST(KeyRecord, PassphraseSaltIsStoredAndReused) {
  PassphraseRepo p;
  EXPECT_NE(p.record().find("scrypt"), std::string::npos);
  Bytes got = p.copy_with_record(p.record())->get_bytes("x");
  EXPECT_EQ(std::string(got.begin(), got.end()), "hello");
}

TEST(KeyRecord, KdfParametersThatAreNotIntegersAreCorruption) {
  PassphraseRepo p;
  const std::string rec = p.record();
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{{"\"r\": 8", "\"r\": 8.5"},
                                                                               {"\"p\": 1", "\"p\": -1"}}) {
    SCOPED_TRACE(to);
    std::string bad = rec;
    ASSERT_NE(bad.find(from), std::string::npos) << rec;
    bad.replace(bad.find(from), from.size(), to);
    auto again = p.copy_with_record(bad);
    try {
      again->read_key();
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
      EXPECT_NE(std::string(e.what()).find("malformed key record (kdf: \""), std::string::npos) << e.what();
    }
  }
}

TEST(Repository, StoredDigestReadsOnlyTheTrailer) {
  Repository repo(std::make_unique<MemoryStorage>(), Config{});
  repo.put_bytes("obj", as_bytes("some content"));
  Digest d = repo.stored_digest("obj");
  EXPECT_EQ(d.size, 12u);
  EXPECT_EQ(d.sha256, sha256(as_bytes("some content")));
  EXPECT_FALSE(d.keyed);  // unencrypted: the plain SHA-256, nothing secret
  EXPECT_EQ(repo.claim_of("obj", Digest{sha256(as_bytes("some content")), 12}, d.keyed), d);
  EXPECT_EQ(kind_of([&] { repo.stored_digest("missing"); }), ErrorKind::NotFound);
}

namespace {

// Records every get: which key, and whether it was a ranged read.
class CountingStorage final : public MemoryStorage {
 public:
  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override {
    if (!in_tail_) (range ? ranged : full).push_back(key);
    return MemoryStorage::get(key, range);
  }
  // A real backend reads the tail with one ranged request (fs: pread, s3: a suffix range); the
  // in-memory default streams the object, which is not what is being counted here.
  ObjectTail get_tail(const std::string& key, std::size_t n) override {
    tails.push_back(key);
    in_tail_ = true;
    ObjectTail t = MemoryStorage::get_tail(key, n);
    in_tail_ = false;
    return t;
  }
  std::vector<std::string> full, ranged, tails;

 private:
  bool in_tail_ = false;
};

Config encrypted_config(const TempDir& dir) {
  Config c;
  c.encryption.method = Encryption::Aes256Gcm;
  c.encryption.key_file = write_key(dir, "key", std::string(64, 'c'));
  return c;
}

const std::string kSeg7 = "wal/0000000100000000/000000010000000000000007";
const std::string kSeg8 = "wal/0000000100000000/000000010000000000000008";

}  // namespace

TEST(Repository, EncryptedObjectMovedToAnotherKeyFailsAsCorruptionNamingIt) {
  TempDir dir;
  auto storage = std::make_unique<MemoryStorage>();
  MemoryStorage* mem = storage.get();
  Repository repo(std::move(storage), encrypted_config(dir));
  repo.put_bytes(kSeg7, as_bytes("segment seven"));
  repo.put_bytes(kSeg8, as_bytes("segment eight"));
  mem->objects[kSeg7] = mem->objects[kSeg8];  // a valid object of another segment under this name
  try {
    repo.get_bytes(kSeg7);
    ADD_FAILURE() << "a moved object decoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
    EXPECT_NE(std::string(e.what()).find("memory:/" + kSeg7 + ": authentication failed"), std::string::npos)
        << e.what();
  }
  Bytes eight = repo.get_bytes(kSeg8);
  EXPECT_EQ(std::string(eight.begin(), eight.end()), "segment eight");
}

TEST(Repository, EncryptedTrailerHoldsAKeyedClaimComparedWithoutDownload) {
  TempDir dir;
  auto storage = std::make_unique<CountingStorage>();
  CountingStorage* mem = storage.get();
  Repository repo(std::move(storage), encrypted_config(dir));
  const std::string content = "the content of segment seven";
  repo.put_bytes(kSeg7, as_bytes(content));
  const Digest plain{sha256(as_bytes(content)), content.size()};
  const Bytes& obj = mem->objects[kSeg7];
  EXPECT_TRUE(std::search(obj.begin(), obj.end(), plain.sha256.begin(), plain.sha256.end()) == obj.end())
      << "the plaintext SHA-256 is in the stored object";

  mem->full.clear();
  Digest stored = repo.stored_digest(kSeg7);
  EXPECT_TRUE(stored.keyed);
  EXPECT_EQ(stored.size, content.size());
  EXPECT_EQ(stored, repo.claim_of(kSeg7, plain, stored.keyed));  // identical content
  const std::string other = "the content of segment eight";
  EXPECT_NE(stored, repo.claim_of(kSeg7, Digest{sha256(as_bytes(other)), other.size()}, stored.keyed));
  EXPECT_NE(stored, plain);
  EXPECT_TRUE(mem->full.empty()) << "the body was downloaded";
  EXPECT_EQ(mem->tails, std::vector<std::string>{kSeg7});

  // Without a key configured the claim cannot be computed: an error, never "different".
  auto copy = std::make_unique<MemoryStorage>();
  copy->objects = mem->objects;
  Repository keyless(std::move(copy), Config{});
  EXPECT_EQ(kind_of([&] { keyless.claim_of(kSeg7, plain, true); }), ErrorKind::Auth);
  EXPECT_EQ(keyless.claim_of(kSeg7, plain, false), plain);
}

TEST(Repository, AutoCompressionThreadsAreTheToolsChoice) {
  Config c;
  ASSERT_EQ(c.compression.threads, Config::CompressionCfg::kAutoThreads);
  Repository repo(std::make_unique<MemoryStorage>(), c);
  EXPECT_EQ(repo.encode_options().threads, 0);  // nobody chose: the calling thread
  repo.set_auto_threads(2);
  EXPECT_EQ(repo.encode_options().threads, 2);
  EXPECT_EQ(repo.encode_options().job_size, 1u << 20);  // bounded memory per worker
  c.compression.threads = 0;                            // the operator's choice wins over the tool's
  Repository fixed(std::make_unique<MemoryStorage>(), c);
  fixed.set_auto_threads(2);
  EXPECT_EQ(fixed.encode_options().threads, 0);
  c.compression.threads = 3;
  Repository three(std::make_unique<MemoryStorage>(), c);
  EXPECT_EQ(three.encode_options().threads, 3);
  EXPECT_EQ(three.encode_options().job_size, 0u);  // zstd's own job size
}

TEST(Manifest, JsonRoundTripAndListing) {
  Repository repo(std::make_unique<MemoryStorage>(), Config{});
  BackupManifest m;
  m.label = make_backup_label(1795000000, false);
  m.start_lsn = 0x2000028;
  m.stop_lsn = 0x2000100;
  m.start_wal = m.stop_wal = "000000010000000000000002";
  m.start_time = "2026-11-21T16:41:00Z";
  m.stop_time = "2026-11-21T16:41:05Z";
  m.system_identifier = 42;
  m.files.push_back({"base/1/1259", 0, 8192, 0600, 1, "0123abcd", 0, 0, ""});
  m.bundles.push_back({0, 8192, 100, std::string(64, 'e')});
  write_manifest(repo, m);
  repo.put_bytes("backups/20200101T000000Z-F/bundle-000000", as_bytes("orphan"));
  BackupListing l = list_backups(repo);
  ASSERT_EQ(l.complete.size(), 1u);
  EXPECT_EQ(l.complete[0].label, m.label);
  EXPECT_EQ(l.complete[0].files[0].path, "base/1/1259");
  EXPECT_EQ(l.complete[0].stop_lsn, 0x2000100u);
  ASSERT_EQ(l.incomplete.size(), 1u);
  EXPECT_EQ(l.incomplete[0], "20200101T000000Z-F");
  EXPECT_EQ(kind_of([&] { BackupManifest::from_json("{}", "x"); }), ErrorKind::Corruption);
  EXPECT_EQ(parse_iso8601("2026-11-21T16:41:00Z") + 5, parse_iso8601("2026-11-21T16:41:05Z"));
  EXPECT_EQ(kind_of([&] { parse_iso8601("yesterday"); }), ErrorKind::InvalidInput);
}

// Per-file checksums: "crc32c" (format 2) or "sha256" (format 1 manifests); neither is corruption.
TEST(Manifest, FileChecksumsInJson) {
  BackupManifest m;
  m.label = "20261121T164100Z-F";
  m.start_wal = m.stop_wal = "000000010000000000000002";
  m.files.push_back({"PG_VERSION", 0, 3, 0600, 1, crc32c_hex(crc32c(as_bytes(std::string("15\n")))), 0, 0, ""});
  std::string text = m.to_json();
  EXPECT_NE(text.find("\"crc32c\": \"" + m.files[0].crc32c + "\""), std::string::npos) << text;
  EXPECT_EQ(text.find("\"sha256\": \"" + std::string(64, 'a')), std::string::npos);
  BackupManifest back = BackupManifest::from_json(text, "x");
  EXPECT_EQ(back.format, 2);  // a full backup needs nothing of format 3
  EXPECT_EQ(back.files[0].crc32c, m.files[0].crc32c);
  EXPECT_TRUE(back.files[0].sha256.empty());

  auto with_entry = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    auto pos = t.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return t.replace(pos, from.size(), to);
  };
  const std::string crc_field = "\"crc32c\": \"" + m.files[0].crc32c + "\"";
  BackupManifest old = BackupManifest::from_json(
      with_entry(crc_field, "\"sha256\": \"" + std::string(64, 'A') + "\""), "x");
  EXPECT_TRUE(old.files[0].crc32c.empty());
  EXPECT_EQ(old.files[0].sha256, std::string(64, 'a'));

  expect_malformed(with_entry(crc_field, "\"no_checksum\": 1"), "file PG_VERSION has no checksum");
  expect_malformed(with_entry(crc_field, "\"crc32c\": \"e30692\""), "file PG_VERSION: \"crc32c\" is not 8 hex digits");
  expect_malformed(with_entry(crc_field, "\"crc32c\": \"e306928g\""), "file PG_VERSION: \"crc32c\" is not 8 hex digits");
  expect_malformed(with_entry(crc_field, "\"sha256\": \"abc\""), "file PG_VERSION: \"sha256\" is not 64 hex digits");

  std::string newer = with_entry("\"format\": 2", "\"format\": 4");
  EXPECT_EQ(kind_of([&] { BackupManifest::from_json(newer, "x"); }), ErrorKind::Config);
  m.files[0].crc32c.clear();
  EXPECT_EQ(kind_of([&] { m.to_json(); }), ErrorKind::Internal);  // never written without a checksum
}

// The file entries are written one by one and taken out of the parse one by one: the text is still
// exactly a whole tree's dump(1), every entry comes back in order, and a bad entry, an entry that is not
// an object or a second "files" is refused.
TEST(Manifest, FilesStreamedKeepTheTextAndTheOrder) {
  BackupManifest m;
  m.label = "20261121T164100Z-F";
  m.start_wal = m.stop_wal = "000000010000000000000002";
  m.tablespaces.push_back({16400, "/srv/ts"});
  m.directories.push_back({"base", 0, 0700});
  for (int i = 0; i < 50; ++i) {
    std::string crc = "0000000" + std::to_string(i % 10);
    m.files.push_back({"base/5/" + std::to_string(16384 + i), i % 2 ? 16400u : 0u, 8192u * i, 0600, i,
                       crc, static_cast<std::uint64_t>(i / 10), 8192u * (i % 10), ""});
  }
  m.files[3].sha256 = std::string(64, 'b');
  m.files[3].path = "PG_VERSION \"quoted\"\nline";
  m.bundles.push_back({0, 8192, 100, std::string(64, 'e')});
  const std::string text = m.to_json();
  EXPECT_EQ(nlohmann::json::parse(text).dump(1) + "\n", text);
  // What write_manifest streams: the same text, whatever the size of the reads.
  for (std::size_t chunk : {1, 7, 4096}) {
    ManifestText src(m);
    std::string streamed;
    std::vector<std::uint8_t> buf(chunk);
    while (std::size_t n = src.read(buf)) streamed.append(reinterpret_cast<const char*>(buf.data()), n);
    EXPECT_EQ(streamed, text) << chunk;
  }
  BackupManifest back = BackupManifest::from_json(text, "x");
  ASSERT_EQ(back.files.size(), m.files.size());
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    EXPECT_EQ(back.files[i].path, m.files[i].path);
    EXPECT_EQ(back.files[i].tablespace, m.files[i].tablespace);
    EXPECT_EQ(back.files[i].size, m.files[i].size);
    EXPECT_EQ(back.files[i].mtime, m.files[i].mtime);
    EXPECT_EQ(back.files[i].crc32c, m.files[i].crc32c);
    EXPECT_EQ(back.files[i].sha256, m.files[i].sha256);
    EXPECT_EQ(back.files[i].bundle, m.files[i].bundle);
    EXPECT_EQ(back.files[i].offset, m.files[i].offset);
  }
  EXPECT_EQ(back.directories.size(), 1u);
  EXPECT_EQ(back.bundles.size(), 1u);
  EXPECT_EQ(back.tablespaces.size(), 1u);

  BackupManifest none = m;
  none.files.clear();
  const std::string empty = none.to_json();
  EXPECT_EQ(nlohmann::json::parse(empty).dump(1) + "\n", empty);
  EXPECT_TRUE(BackupManifest::from_json(empty, "x").files.empty());

  std::string not_object = empty;
  not_object.replace(not_object.find("\"files\": []"), 11, "\"files\": [7]");
  expect_malformed(not_object, "a file entry is not an object");
  std::string twice = text;
  twice.replace(twice.find("\"format\""), 8, "\"files\": [],\n \"format\"");
  expect_malformed(twice, "\"files\" twice");
  std::string bad_entry = text;
  bad_entry.replace(bad_entry.find("\"offset\""), 8, "\"offzet\"");
  expect_malformed(bad_entry, "offset");
  // A newer format is refused as such, whatever its entries hold.
  std::string newer = bad_entry;
  newer.replace(newer.find("\"format\": 2"), 11, "\"format\": 9");
  EXPECT_EQ(kind_of([&] { BackupManifest::from_json(newer, "x"); }), ErrorKind::Config);
}

// An entry's members are read as the parse meets them, each checked for its type and range (a number
// nlohmann would convert or truncate is refused), a key twice is refused, a key pgvault does not know is
// ignored, and every error names the file.
TEST(Manifest, FileEntryMembersAreCheckedOneByOne) {
  BackupManifest m;
  m.label = "20261121T164100Z-F";
  m.start_wal = m.stop_wal = "000000010000000000000002";
  m.files.push_back({"PG_VERSION", 0, 3, 0600, 1, "e3069283", 0, 0, ""});
  const std::string text = m.to_json();
  auto with = [&](const std::string& from, const std::string& to) { return replaced_once(text, from, to); };
  const std::string mode = "\"mode\": 384";
  expect_malformed(with(mode, "\"mode\": -1"), "file PG_VERSION: \"mode\" is not an integer from 0 to 4294967295");
  expect_malformed(with(mode, "\"mode\": 4294967296"), "file PG_VERSION: \"mode\" is not an integer");
  expect_malformed(with(mode, "\"mode\": 384.5"), "file PG_VERSION: \"mode\" is not an integer");
  expect_malformed(with(mode, "\"mode\": \"384\""), "file PG_VERSION: \"mode\" is not an integer");
  expect_malformed(with(mode, "\"mode\": true"), "file PG_VERSION: \"mode\" is not an integer");
  expect_malformed(with("\"tablespace\": 0", "\"tablespace\": -1"), "file PG_VERSION: \"tablespace\" is not an integer");
  expect_malformed(with("\"size\": 3", "\"size\": -3"), "file PG_VERSION: \"size\" is not an integer");
  expect_malformed(with("\"mtime\": 1", "\"mtime\": 9223372036854775808"), "file PG_VERSION: \"mtime\" is not an integer");
  expect_malformed(with("\"bundle\": 0", "\"bundle\": null"), "file PG_VERSION: \"bundle\" is not an integer");
  expect_malformed(with("\"offset\": 0", "\"offset\": [0]"), "file PG_VERSION: \"offset\" is not an integer");
  expect_malformed(with("\"path\": \"PG_VERSION\"", "\"path\": 7"), "a file entry: \"path\" is not a string");
  expect_malformed(with("\"crc32c\": \"e3069283\"", "\"crc32c\": 3808858755"), "file PG_VERSION: \"crc32c\" is not a string");
  expect_malformed(with(mode, mode + ", \"mode\": 384"), "file PG_VERSION: \"mode\" appears twice");
  expect_malformed(with(mode, mode + ", \"kind\": 1"), "file PG_VERSION: \"kind\" is not a string");
  for (const char* key : {"path", "tablespace", "size", "mode", "mtime", "bundle", "offset"}) {
    const std::string k = std::string("\"") + key + "\":";
    expect_malformed(with(k, "\"other_" + std::string(key) + "\":"), std::string("has no \"") + key + "\"");
  }
  BackupManifest back = BackupManifest::from_json(with(mode, mode + ", \"future\": {\"mode\": [1]}, \"z\": -1"), "x");
  EXPECT_EQ(back.files[0].mode, 0600u);  // unknown keys, whatever they hold, are not read
  back = BackupManifest::from_json(with("\"mtime\": 1", "\"mtime\": -5"), "x");
  EXPECT_EQ(back.files[0].mtime, -5);
  back = BackupManifest::from_json(with("\"crc32c\": \"e3069283\"", "\"crc32c\": \"E3069283\""), "x");
  EXPECT_EQ(back.files[0].crc32c, "e3069283");
}

TEST(Manifest, HeadNumbersAndBundleDigestsAreChecked) {
  // The head's integers are refused when they are not integers of their type (a negative timeline would
  // otherwise wrap to 4294967295, a float size be truncated), and a bundle's SHA-256 must be 64 hex digits.
  BackupManifest m;
  m.label = "20261121T164100Z-F";
  m.timeline = 1;
  m.wal_segment_size = 16u << 20;
  m.start_wal = m.stop_wal = "000000010000000000000002";
  m.tablespaces.push_back({16400, "/srv/ts"});
  m.directories.push_back({"base", 0, 0700});
  m.bundles.push_back({0, 3, 20, std::string(64, 'a')});
  m.files.push_back({"PG_VERSION", 0, 3, 0600, 1, "e3069283", 0, 0, ""});
  const std::string text = m.to_json();
  auto with = [&](const std::string& from, const std::string& to) { return replaced_once(text, from, to); };
  EXPECT_EQ(BackupManifest::from_json(text, "x").bundles.at(0).sha256, std::string(64, 'a'));
  expect_malformed(with("\"timeline\": 1", "\"timeline\": -1"), "(\"timeline\" is not an integer from 0 to 4294967295)");
  expect_malformed(with("\"timeline\": 1", "\"timeline\": 1.5"), "\"timeline\" is not an integer");
  expect_malformed(with("\"wal_segment_size\": 16777216", "\"wal_segment_size\": 16777216.0"),
                   "\"wal_segment_size\" is not an integer");
  expect_malformed(with("\"pg_version\": 0", "\"pg_version\": \"15\""), "\"pg_version\" is not an integer");
  expect_malformed(with("\"total_bytes\": 0", "\"total_bytes\": -1"), "\"total_bytes\" is not an integer");
  expect_malformed(with("\"oid\": 16400", "\"oid\": -16400"), "a tablespace: \"oid\" is not an integer");
  expect_malformed(with("\"mode\": 448", "\"mode\": 448.5"), "directory base: \"mode\" is not an integer");
  expect_malformed(with("\"plain_size\": 3", "\"plain_size\": 3e9"), "bundle 0: \"plain_size\" is not an integer");
  expect_malformed(with("\"index\": 0", "\"index\": -1"), "a bundle: \"index\" is not an integer");
  expect_malformed(with(std::string(64, 'a'), std::string(63, 'a')), "bundle 0: \"sha256\" is not 64 hex digits");
  // The system identifier (a string: JSON numbers lose 64-bit integers) must be a decimal number exactly:
  // std::stoull wrapped "-1" to 18446744073709551615 and read "42abc" as 42.
  EXPECT_EQ(BackupManifest::from_json(text, "x").system_identifier, 0u);
  for (const char* bad : {"\"-1\"", "\" 0\"", "\"0abc\"", "\"00\"", "0", "\"\""}) {
    expect_malformed(with("\"system_identifier\": \"0\"", std::string("\"system_identifier\": ") + bad),
                     "(\"system_identifier\" is not a decimal number in a string)");
  }
  expect_malformed(with(std::string(64, 'a'), std::string(63, 'a') + "z"), "bundle 0: \"sha256\" is not 64 hex digits");
  try {  // a newer format is still refused as such, also when written as a float
    BackupManifest::from_json(with("\"format\": 2", "\"format\": 2.5"), "x");
    ADD_FAILURE() << "a float format accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
  }
}

TEST(Spool, PushRecordMatchesOnlyTheSameFile) {
  TempDir dir;
  std::string spool = spool_dir(dir / "spool", "push", "fs:/x");
  std::string f = dir / "000000010000000000000001";
  std::ofstream(f) << "segment";
  FileIdentity id = file_identity(f);
  write_push_record(spool, "000000010000000000000001", id, Digest{});
  EXPECT_TRUE(take_push_record(spool, "000000010000000000000001", id));
  EXPECT_FALSE(take_push_record(spool, "000000010000000000000001", id));  // used once
  write_push_record(spool, "000000010000000000000001", id, Digest{});
  std::ofstream(f, std::ios::app) << "changed";
  EXPECT_FALSE(take_push_record(spool, "000000010000000000000001", file_identity(f)));
}

// --- repo-init: the marker; no other tool creates a repository (issue 10) -------------------------

namespace {
std::unique_ptr<MemoryStorage> copy_of(const MemoryStorage& m) {
  auto c = std::make_unique<MemoryStorage>();
  c->objects = m.objects;
  return c;
}
}  // namespace

TEST(RepoInit, OnlyTheMarkerOrAnOlderIdentityMakesALocationARepository) {
  auto storage = std::make_unique<MemoryStorage>();
  MemoryStorage* mem = storage.get();
  Config c;
  c.source = "/etc/pgvault/pgvault.toml";
  Repository repo(std::move(storage), c);
  EXPECT_FALSE(repo.initialised());
  try {
    repo.require_initialised();
    ADD_FAILURE() << "an empty location passed";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotInitialised);
    std::string msg = e.what();
    EXPECT_NE(msg.find("memory:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("repo-init"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/etc/pgvault/pgvault.toml"), std::string::npos) << msg;
  }
  EXPECT_TRUE(mem->objects.empty());  // asking wrote nothing

  InitResult r = repo.initialise();
  EXPECT_TRUE(r.marker_created);
  EXPECT_FALSE(r.legacy);
  EXPECT_EQ(r.key_record, "none");
  ASSERT_EQ(mem->objects.size(), 1u);
  std::string marker(mem->objects["pgvault.repo.json"].begin(), mem->objects["pgvault.repo.json"].end());
  EXPECT_NE(marker.find("\"format\": 1"), std::string::npos) << marker;
  Repository again(copy_of(*mem), c);
  EXPECT_NO_THROW(again.require_initialised());
  InitResult twice = again.initialise();
  EXPECT_FALSE(twice.changed());
  EXPECT_EQ(twice.created, r.created);
  EXPECT_NE(init_summary_text("memory:", twice).find("nothing changed"), std::string::npos);

  // A repository of an older pgvault: pgvault.json and no marker.
  auto old = std::make_unique<MemoryStorage>();
  std::string j = R"({"format": 1, "system_identifier": "1", "pg_version": 15, "wal_segment_size": 16777216})";
  old->objects["pgvault.json"] = Bytes(j.begin(), j.end());
  Repository legacy(std::move(old), c);
  EXPECT_TRUE(legacy.initialised());
  InitResult l = legacy.initialise();
  EXPECT_TRUE(l.legacy && l.marker_created);
}

TEST(RepoInit, WritesTheKeyRecordAndRefusesAnotherKey) {
  TempDir dir;
  Config c;
  c.encryption.method = Encryption::Aes256Gcm;
  c.encryption.key_file = write_key(dir, "k1", std::string(64, 'a'));
  auto storage = std::make_unique<MemoryStorage>();
  MemoryStorage* mem = storage.get();
  Repository repo(std::move(storage), c);
  EXPECT_EQ(repo.initialise().key_record, "created");
  ASSERT_TRUE(mem->objects.count("pgvault.key.json"));
  Repository same(copy_of(*mem), c);
  EXPECT_EQ(same.initialise().key_record, "verified");

  c.encryption.key_file = write_key(dir, "k2", std::string(64, 'b'));
  auto copy = copy_of(*mem);
  copy->objects.erase("pgvault.repo.json");  // even where the marker is still to be written
  MemoryStorage* seen = copy.get();
  Repository wrong(std::move(copy), c);
  EXPECT_EQ(kind_of([&] { wrong.initialise(); }), ErrorKind::Auth);
  EXPECT_FALSE(seen->objects.count("pgvault.repo.json"));  // nothing written

  // No key configured: the record is reported, not checked.
  Repository keyless(copy_of(*mem), Config{});
  EXPECT_EQ(keyless.initialise().key_record, "unchecked");
}

// Files 0640, directories 0750 (docs/FORMAT.md, "File modes"), whichever tool and umask created them.
TEST(FsModes, TheRepositoryRuleWhateverTheUmask) {
  TempDir dir;
  Config c;
  c.repository.path = dir / "repo";
  mode_t old = ::umask(077);  // PostgreSQL's archiver runs wal-push with this umask
  {
    Repository repo(open_storage(c), c);
    repo.initialise();
    repo.put_bytes("wal/0000000100000000/000000010000000000000001", as_bytes("x"));
  }
  ::umask(old);
  struct stat st;
  auto mode = [&](const std::string& p) {
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(dir / "repo"), 0750u);
  EXPECT_EQ(mode(dir / "repo/wal"), 0750u);
  EXPECT_EQ(mode(dir / "repo/wal/0000000100000000"), 0750u);
  EXPECT_EQ(mode(dir / "repo/pgvault.repo.json"), 0640u);
  EXPECT_EQ(mode(dir / "repo/wal/0000000100000000/000000010000000000000001"), 0640u);
}

// Format 3: an incremental backup's manifest names its parent and mode; its entries have kinds.
TEST(Manifest, IncrementalEntriesRoundTripAndAreChecked) {
  BackupManifest m;
  m.label = "20261122T010000Z-I";
  m.type = "incremental";
  m.parent = "20261121T164100Z-F";
  m.incremental_mode = "client";
  m.parent_start_lsn = 0x2000028;
  m.parent_timeline = 1;
  m.start_wal = m.stop_wal = "000000010000000000000004";
  m.files.push_back({"PG_VERSION", 0, 3, 0600, 1, "e3069283", 0, 0, ""});
  m.files.back().kind = FileKind::Unchanged;
  m.files.push_back({"base/5/16384", 0, 8192 * 10, 0600, 1, "0badcafe", 1, 0, ""});
  m.files.back().kind = FileKind::Blocks;
  m.files.back().stored_size = 8192 + 44;
  BackupManifest back = BackupManifest::from_json(m.to_json(), "x");
  EXPECT_EQ(back.format, 3);
  EXPECT_EQ(back.parent, m.parent);
  EXPECT_EQ(back.incremental_mode, "client");
  EXPECT_EQ(back.parent_start_lsn, 0x2000028u);
  EXPECT_EQ(back.parent_timeline, 1u);
  ASSERT_EQ(back.files.size(), 2u);
  EXPECT_EQ(back.files[0].kind, FileKind::Unchanged);
  EXPECT_EQ(back.files[0].bundle_bytes(), 0u);
  EXPECT_EQ(back.files[1].kind, FileKind::Blocks);
  EXPECT_EQ(back.files[1].bundle_bytes(), 8192u + 44);
  EXPECT_EQ(back.files[1].size, 8192u * 10);

  auto refused = [](const BackupManifest& bad, const std::string& needle) { expect_malformed(bad.to_json(), needle); };
  BackupManifest no_parent = m;
  no_parent.parent.clear();
  refused(no_parent, "an incremental backup without a parent");
  BackupManifest full_with_parent_start = m;
  full_with_parent_start.type = "full";
  full_with_parent_start.parent.clear();
  full_with_parent_start.incremental_mode.clear();
  full_with_parent_start.files.clear();
  refused(full_with_parent_start, "a full backup with a parent");
  // Written before pgvault recorded the parent's start: still read, nothing to check it against.
  BackupManifest older = m;
  older.parent_start_lsn = 0;
  EXPECT_EQ(older.to_json().find("parent_start_lsn"), std::string::npos);
  EXPECT_EQ(BackupManifest::from_json(older.to_json(), "x").parent_start_lsn, 0u);
  BackupManifest bad_mode = m;
  bad_mode.incremental_mode = "magic";
  refused(bad_mode, "incremental_mode \"magic\"");
  BackupManifest full_with_blocks = m;
  full_with_blocks.type = "full";
  full_with_blocks.parent.clear();
  full_with_blocks.incremental_mode.clear();
  full_with_blocks.parent_start_lsn = 0;
  refused(full_with_blocks, "file PG_VERSION of a full backup is not stored whole");
  std::string text = m.to_json();
  std::string odd = text;
  odd.replace(odd.find("\"unchanged\""), 11, "\"sideways\"");
  EXPECT_THROW_KIND(BackupManifest::from_json(odd, "x"), ErrorKind::Corruption);
  const std::string stored = "\"stored_size\": " + std::to_string(8192 + 44);
  std::string no_blocks = text;
  no_blocks.replace(no_blocks.find(stored), stored.size(), "\"stored_size\": 0");
  expect_malformed(no_blocks, "file base/5/16384 has no blocks stored");
  std::string no_stored = text;
  no_stored.replace(no_stored.find(stored), 13, "\"stored_sighs\"");
  expect_malformed(no_stored, "file base/5/16384 has no \"stored_size\"");
}

namespace {

// The zstd frame of an unencrypted object: its body starts right after the 32-byte header.
unsigned long long frame_window(const Bytes& object) {
  ZSTD_frameHeader h{};
  EXPECT_EQ(ZSTD_getFrameHeader(&h, object.data() + kObjectHeaderSize, object.size() - kObjectHeaderSize), 0u);
  return h.windowSize;
}

// What put_object stores (WAL segments above all) is compressed with a window of at most 512 KiB, so a
// segment encoding in wal-push, and decoding in wal-fetch, holds about 3 MiB less than at level 3's own.
TEST(Repository, PutObjectCapsTheCompressionWindow) {
  auto storage = std::make_unique<MemoryStorage>();
  MemoryStorage* mem = storage.get();
  Repository repo(std::move(storage), Config{});
  Bytes segment(16 << 20);
  for (std::size_t i = 0; i < segment.size(); ++i) segment[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
  repo.put_bytes("wal/0000000100000000/000000010000000000000001", segment);
  EXPECT_EQ(frame_window(mem->objects.at("wal/0000000100000000/000000010000000000000001")),
            1ull << kEncodeWindowLog);
  EXPECT_EQ(repo.get_bytes("wal/0000000100000000/000000010000000000000001"), segment);
  // Level 1's own window is the cap.
  Config low;
  low.compression.level = 1;
  auto storage2 = std::make_unique<MemoryStorage>();
  MemoryStorage* mem2 = storage2.get();
  Repository repo_low(std::move(storage2), low);
  repo_low.put_bytes("x", segment);
  EXPECT_EQ(frame_window(mem2->objects.at("x")), 1ull << 19);
}

// zstd's streaming output for `plain` at level 3 with a 2^19 window and the given table sizes.
Bytes zstd_level3(const Bytes& plain, int table_log) {
  std::unique_ptr<ZSTD_CCtx, std::size_t (*)(ZSTD_CCtx*)> c(ZSTD_createCCtx(), ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_windowLog, kEncodeWindowLog);
  if (table_log > 0) {
    ZSTD_CCtx_setParameter(c.get(), ZSTD_c_hashLog, table_log);
    ZSTD_CCtx_setParameter(c.get(), ZSTD_c_chainLog, table_log);
  }
  Bytes out(ZSTD_compressBound(plain.size()));
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  ZSTD_inBuffer in{plain.data(), plain.size(), 0};
  while (in.pos < in.size) EXPECT_FALSE(ZSTD_isError(ZSTD_compressStream2(c.get(), &o, &in, ZSTD_e_continue)));
  while (ZSTD_compressStream2(c.get(), &o, &in, ZSTD_e_end) != 0) {
  }
  out.resize(o.pos);
  return out;
}

// ...and with 2^14-entry match tables at level 3 (kEncodeTableLog): zstd's own output with those
// parameters, byte for byte, which differs from level 3's own tables on text like WAL's.
TEST(Repository, PutObjectCapsTheMatchTables) {
  auto storage = std::make_unique<MemoryStorage>();
  MemoryStorage* mem = storage.get();
  Repository repo(std::move(storage), Config{});
  Bytes text(2 << 20);
  std::mt19937 rng(7);
  for (auto& b : text) b = static_cast<std::uint8_t>("0123456789abcdef"[rng() % 16]);
  for (std::size_t i = 4096; i < text.size(); i += 4096) std::copy_n(text.begin() + (rng() % i), 512, text.begin() + i - 512);
  repo.put_bytes("x", text);
  const Bytes& object = mem->objects.at("x");
  const Bytes body(object.begin() + kObjectHeaderSize, object.end() - kObjectTrailerSize);
  EXPECT_TRUE(body == zstd_level3(text, kEncodeTableLog));
  EXPECT_FALSE(body == zstd_level3(text, 0));
  EXPECT_EQ(repo.get_bytes("x"), text);
}

// get_text: the plaintext as a string, whole across its 1 MiB chunks (here 2 MiB and 3 bytes), and empty
// for an empty object.
TEST(Repository, GetTextJoinsTheChunks) {
  Repository repo(std::make_unique<MemoryStorage>(), Config{});
  std::string text((2u << 20) + 3, '\0');
  std::mt19937 rng(11);
  for (auto& c : text) c = static_cast<char>('a' + rng() % 26);
  repo.put_bytes("t", as_bytes(text));
  EXPECT_EQ(repo.get_text("t"), text);
  repo.put_bytes("empty", {});
  EXPECT_EQ(repo.get_text("empty"), "");
}

}  // namespace
