// wal-push / wal-fetch logic on a local repository with synthetic WAL segments (1 MiB, a valid size).
#include "common/archive/archive.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"
#include "archive/archive_fixture.h"

using namespace pgvault;
using pgvault::testing::FaultStorage;
using pgvault::testing::TempDir;

using namespace pgvault::archive_test;

TEST_F(Fixture, PushThenFetchRoundTrips) {
  Bytes seg = make_segment(42, 1, 7);
  auto r = repo();
  EXPECT_EQ(push_wal(r, put_file(kName, seg)).outcome, PushOutcome::Stored);
  EXPECT_TRUE(std::filesystem::exists(repo_path + "/wal/0000000100000000/" + kName));
  auto r2 = repo();
  EXPECT_EQ(fetch_wal(r2, kName, dir / "RECOVERYXLOG"), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dir / "RECOVERYXLOG"), seg);
}

TEST_F(Fixture, IdentityRecordsTheCluster) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(7301234567890123456ull, 1, 1)));
  auto id = repo().identity();
  ASSERT_TRUE(id);
  EXPECT_EQ(id->system_identifier, 7301234567890123456ull);
  EXPECT_EQ(id->wal_segment_size, kSeg);
  EXPECT_EQ(id->pg_version, 15);
}

TEST_F(Fixture, ForeignClusterIsRefused) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(1111, 1, 1)));
  auto r2 = repo();
  EXPECT_EQ(kind_of([&] { push_wal(r2, put_file("000000010000000000000002", make_segment(2222, 1, 1))); }),
            ErrorKind::Foreign);
  EXPECT_FALSE(std::filesystem::exists(repo_path + "/wal/0000000100000000/000000010000000000000002"));
}

TEST_F(Fixture, RepushOfIdenticalContentSucceedsWithoutRewriting) {
  auto path = put_file(kName, make_segment(42, 1, 3));
  auto r = repo();
  push_wal(r, path);
  std::string stored = repo_path + "/wal/0000000100000000/" + kName;
  struct stat before, after;
  ASSERT_EQ(::stat(stored.c_str(), &before), 0);
  auto r2 = repo();
  EXPECT_EQ(push_wal(r2, path).outcome, PushOutcome::AlreadyStored);
  ASSERT_EQ(::stat(stored.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // not rewritten
}

TEST_F(Fixture, DifferentContentUnderSameNameFailsAndKeepsTheStoredOne) {
  auto r = repo();
  Bytes first = make_segment(42, 1, 3);
  push_wal(r, put_file(kName, first));
  Bytes stored_before = read_file(repo_path + "/wal/0000000100000000/" + kName);
  auto r2 = repo();
  try {
    push_wal(r2, put_file(kName, make_segment(42, 1, 4)));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Duplicate);
    std::string msg = e.what();
    EXPECT_NE(msg.find(Digest{sha256(first), first.size()}.hex()), std::string::npos) << msg;
    Bytes second = make_segment(42, 1, 4);
    EXPECT_NE(msg.find(Digest{sha256(second), second.size()}.hex()), std::string::npos) << msg;
  }
  EXPECT_EQ(read_file(repo_path + "/wal/0000000100000000/" + kName), stored_before);
}

TEST_F(Fixture, HistoryFilesAreNeverOverwrittenEither) {
  auto r = repo();
  push_wal(r, put_file("00000002.history", as_bytes("1\t0/3000000\tno recovery target specified\n")));
  auto r2 = repo();
  EXPECT_EQ(push_wal(r2, put_file("00000002.history", as_bytes("1\t0/3000000\tno recovery target specified\n"))).outcome,
            PushOutcome::AlreadyStored);
  EXPECT_EQ(kind_of([&] { push_wal(r2, put_file("00000002.history", as_bytes("1\t0/4000000\tother\n"))); }),
            ErrorKind::Duplicate);
}

TEST_F(Fixture, PartialAndBackupHistoryFiles) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1)));
  EXPECT_EQ(push_wal(r, put_file("000000010000000000000002.partial", make_segment(42, 1, 9, kSeg, 2))).outcome,
            PushOutcome::Stored);
  EXPECT_EQ(push_wal(r, put_file("000000010000000000000002.00000028.backup", as_bytes("START WAL LOCATION\n"))).outcome,
            PushOutcome::Stored);
  EXPECT_EQ(fetch_wal(r, "000000010000000000000002.00000028.backup", dir / "out"), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dir / "out"), Bytes(as_bytes("START WAL LOCATION\n").begin(), as_bytes("START WAL LOCATION\n").end()));
}

TEST_F(Fixture, BadInputIsRefused) {
  auto r = repo();
  EXPECT_EQ(kind_of([&] { push_wal(r, wal_dir + "/" + kName); }), ErrorKind::InvalidInput);  // missing
  EXPECT_EQ(kind_of([&] { push_wal(r, put_file("postgresql.conf", as_bytes("x"))); }), ErrorKind::InvalidInput);
  EXPECT_EQ(kind_of([&] { push_wal(r, put_file(kName, as_bytes("not a wal segment at all, no"))); }),
            ErrorKind::InvalidInput);
  Bytes truncated = make_segment(42, 1, 1);
  truncated.resize(kSeg / 2);
  EXPECT_EQ(kind_of([&] { push_wal(r, put_file(kName, truncated)); }), ErrorKind::InvalidInput);
  EXPECT_EQ(kind_of([&] { fetch_wal(r, "../etc/passwd", dir / "x"); }), ErrorKind::InvalidInput);
  EXPECT_FALSE(std::filesystem::exists(repo_path + "/wal"));
}

TEST_F(Fixture, FetchMissingIsMissingOnlyWhenTheRepositoryExists) {
  auto r = repo();
  // No identity: a wrong path must not look like the end of the archive.
  EXPECT_EQ(kind_of([&] { fetch_wal(r, kName, dir / "x"); }), ErrorKind::Config);
  push_wal(r, put_file(kName, make_segment(42, 1, 1)));
  auto r2 = repo();
  EXPECT_EQ(fetch_wal(r2, "000000010000000000000002", dir / "x"), FetchOutcome::Missing);
  EXPECT_EQ(fetch_wal(r2, "00000002.history", dir / "x"), FetchOutcome::Missing);
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

TEST_F(Fixture, CorruptOrTruncatedObjectsNeverReachTheDestination) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1)));
  std::string stored = repo_path + "/wal/0000000100000000/" + kName;
  Bytes good = read_file(stored);
  for (std::size_t pos : {std::size_t{5}, std::size_t{40}, good.size() / 2, good.size() - 60, good.size() - 3}) {
    Bytes bad = good;
    bad[pos] ^= 0x01;
    write_file(stored, bad);
    auto r2 = repo();
    EXPECT_NE(kind_of([&] { fetch_wal(r2, kName, dir / "RECOVERYXLOG"); }), ErrorKind::NotFound) << pos;
    EXPECT_FALSE(std::filesystem::exists(dir / "RECOVERYXLOG")) << pos;
  }
  for (std::size_t len : {std::size_t{0}, std::size_t{10}, good.size() / 2, good.size() - 1}) {
    write_file(stored, ByteView(good).first(len));
    auto r2 = repo();
    EXPECT_EQ(kind_of([&] { fetch_wal(r2, kName, dir / "RECOVERYXLOG"); }), ErrorKind::Corruption) << len;
    EXPECT_FALSE(std::filesystem::exists(dir / "RECOVERYXLOG")) << len;
  }
  // No temporary files left beside the destination either.
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(kTempPrefix), std::string::npos) << e.path();
  }
}

TEST_F(Fixture, CorruptStoredCopyOfIdenticalContentIsRepaired) {
  auto path = put_file(kName, make_segment(42, 1, 1));
  auto r = repo();
  push_wal(r, path);
  std::string stored = repo_path + "/wal/0000000100000000/" + kName;
  Bytes obj = read_file(stored);
  obj[obj.size() / 2] ^= 0xFF;  // body damage, trailer intact
  write_file(stored, obj);
  auto r2 = repo();
  EXPECT_EQ(push_wal(r2, path).outcome, PushOutcome::Repaired);
  auto r3 = repo();
  EXPECT_EQ(fetch_wal(r3, kName, dir / "x"), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dir / "x"), read_file(path));
}

TEST_F(Fixture, StorageErrorsAreNotMissing) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1)));
  auto faulty = std::make_unique<FaultStorage>(make_fs_storage(repo_path));
  faulty->fail = [](const std::string& op, const std::string&) {
    if (op == "get") throw Error(ErrorKind::Transient, "storage unreachable");
  };
  Repository fr(std::move(faulty), config);
  EXPECT_EQ(kind_of([&] { fetch_wal(fr, kName, dir / "x"); }), ErrorKind::Transient);
  EXPECT_EQ(kind_of([&] { fetch_wal(fr, "000000010000000000000009", dir / "x"); }), ErrorKind::Transient);
}

TEST_F(Fixture, EncryptionAndCompressionCombinationsAllReadBack) {
  std::string keyfile = dir / "key";
  write_file(keyfile, as_bytes("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  ::chmod(keyfile.c_str(), 0600);
  int n = 2;
  std::vector<std::pair<std::string, Bytes>> pushed;
  for (auto comp : {Compression::None, Compression::Zstd}) {
    for (auto enc : {Encryption::None, Encryption::Aes256Gcm}) {
      config.compression.method = comp;
      config.encryption.method = enc;
      config.encryption.key_file = keyfile;
      std::uint64_t segno = static_cast<std::uint64_t>(n++);
      std::string name = segment_file_name(1, segno, kSeg);
      Bytes seg = make_segment(42, 1, static_cast<std::uint8_t>(n), kSeg, segno);
      auto r = repo();
      push_wal(r, put_file(name, seg));
      pushed.emplace_back(name, seg);
    }
  }
  // Read everything back with yet another configuration: the headers decide.
  config.compression.method = Compression::Zstd;
  config.encryption.method = Encryption::None;
  for (auto& [name, seg] : pushed) {
    auto r = repo();
    ASSERT_EQ(fetch_wal(r, name, dir / "out"), FetchOutcome::Fetched) << name;
    EXPECT_EQ(read_file(dir / "out"), seg) << name;
  }
}

TEST_F(Fixture, WrongKeyIsAnAuthError) {
  std::string k1 = dir / "k1", k2 = dir / "k2";
  write_file(k1, as_bytes("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  write_file(k2, as_bytes("fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"));
  ::chmod(k1.c_str(), 0600);
  ::chmod(k2.c_str(), 0600);
  config.encryption.method = Encryption::Aes256Gcm;
  config.encryption.key_file = k1;
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1)));
  config.encryption.key_file = k2;
  auto r2 = repo();
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, kName, dir / "x"); }), ErrorKind::Auth);
  EXPECT_EQ(kind_of([&] { push_wal(r2, put_file("000000010000000000000002", make_segment(42, 1, 2))); }),
            ErrorKind::Auth);
  config.encryption.key_file.clear();
  config.encryption.method = Encryption::None;
  auto r3 = repo();
  EXPECT_EQ(kind_of([&] { fetch_wal(r3, kName, dir / "x"); }), ErrorKind::Auth);
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

TEST_F(Fixture, PassphraseKeyedRepository) {
  std::string pf = dir / "pass";
  write_file(pf, as_bytes("correct horse battery staple\n"));
  ::chmod(pf.c_str(), 0600);
  config.encryption.method = Encryption::Aes256Gcm;
  config.encryption.passphrase_file = pf;
  Bytes seg = make_segment(42, 1, 5);
  auto r = repo();
  push_wal(r, put_file(kName, seg));
  auto r2 = repo();
  ASSERT_EQ(fetch_wal(r2, kName, dir / "x"), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dir / "x"), seg);
  write_file(pf, as_bytes("wrong horse\n"));
  auto r3 = repo();
  EXPECT_EQ(kind_of([&] { fetch_wal(r3, kName, dir / "y"); }), ErrorKind::Auth);
}

// Encrypted objects carry a keyed claim, not the plaintext SHA-256: a re-push still tells identical from
// different content from the trailer alone.
TEST_F(Fixture, EncryptedRepushComparesKeyedClaims) {
  std::string k = dir / "k";
  write_file(k, as_bytes("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  ::chmod(k.c_str(), 0600);
  config.encryption.method = Encryption::Aes256Gcm;
  config.encryption.key_file = k;
  Bytes seg = make_segment(42, 1, 3);
  auto r = repo();
  ASSERT_EQ(push_wal(r, put_file(kName, seg)).outcome, PushOutcome::Stored);
  Bytes stored = read_file(repo_path + "/wal/0000000100000000/" + kName);
  const Sha256Digest sha = sha256(seg);
  EXPECT_TRUE(std::search(stored.begin(), stored.end(), sha.begin(), sha.end()) == stored.end());

  auto r2 = repo();
  PushResult again = push_wal(r2, put_file(kName, seg));
  EXPECT_EQ(again.outcome, PushOutcome::AlreadyStored);
  EXPECT_EQ(again.digest, (Digest{sha, seg.size()}));  // the result still reports the plaintext digest
  try {
    push_wal(r2, put_file(kName, make_segment(42, 1, 4)));
    FAIL() << "different content was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Duplicate);
    EXPECT_NE(std::string(e.what()).find("stored: hmac-sha256 "), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(repo_path + "/wal/0000000100000000/" + kName), stored);
}

TEST(FetchErrorMode, FollowsSignalFilesUnlessForced) {
  TempDir dir;
  EXPECT_EQ(fetch_error_mode("auto", dir.path()), FetchErrorMode::Abort);
  write_file(dir / "recovery.signal", {});
  EXPECT_EQ(fetch_error_mode("auto", dir.path()), FetchErrorMode::Abort);
  write_file(dir / "standby.signal", {});
  EXPECT_EQ(fetch_error_mode("auto", dir.path()), FetchErrorMode::Missing);
  EXPECT_EQ(fetch_error_mode("abort", dir.path()), FetchErrorMode::Abort);
  ::unlink((dir / "standby.signal").c_str());
  EXPECT_EQ(fetch_error_mode("missing", dir.path()), FetchErrorMode::Missing);
}

// ---- wal-fetch checks what it hands over against the name, the repository and pg_control ----

TEST_F(Fixture, FetchRefusesASegmentWhoseHeaderDoesNotMatchItsName) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1, kSeg, 1)));
  push_wal(r, put_file("000000010000000000000002", make_segment(42, 1, 2, kSeg, 2)));
  // A valid object of segment 2 stored under segment 1's key.
  std::string k1 = repo_path + "/wal/0000000100000000/" + kName;
  std::filesystem::copy_file(repo_path + "/wal/0000000100000000/000000010000000000000002", k1,
                             std::filesystem::copy_options::overwrite_existing);
  auto r2 = repo();
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, kName, dir / "x"); }), ErrorKind::Corruption);
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
  // A header of a newer timeline than the name says (wal-push refuses to store one: copied in).
  push_wal(r, put_file("000000020000000000000003", make_segment(42, 2, 3, kSeg, 3)));
  std::filesystem::copy_file(repo_path + "/wal/0000000200000000/000000020000000000000003",
                             repo_path + "/wal/0000000100000000/000000010000000000000003");
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, "000000010000000000000003", dir / "x"); }), ErrorKind::Corruption);
  // An older one is what the first segment of a new timeline looks like: served.
  push_wal(r, put_file("000000020000000000000004", make_segment(42, 1, 4, kSeg, 4)));
  EXPECT_EQ(fetch_wal(r2, "000000020000000000000004", dir / "x"), FetchOutcome::Fetched);
  // .partial files have a header too; history files do not.
  push_wal(r, put_file("000000010000000000000006.partial", make_segment(42, 1, 5, kSeg, 6)));
  std::filesystem::copy_file(repo_path + "/wal/0000000100000000/000000010000000000000006.partial",
                             repo_path + "/wal/0000000100000000/000000010000000000000005.partial");
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, "000000010000000000000005.partial", dir / "y"); }), ErrorKind::Corruption);
  push_wal(r, put_file("00000002.history", as_bytes("1\t0/5000000\tno recovery target specified\n")));
  EXPECT_EQ(fetch_wal(r2, "00000002.history", dir / "y"), FetchOutcome::Fetched);
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(kTempPrefix), std::string::npos) << e.path();
  }
}

// What wal-fetch would refuse is not archived: a header at another position, or of a newer timeline,
// than the name says (an old, recycled or misnamed file), for segments and .partial files alike.
TEST_F(Fixture, PushRefusesASegmentWhoseHeaderDoesNotMatchItsName) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1, kSeg, 1)));
  const std::string dir1 = repo_path + "/wal/0000000100000000/";
  EXPECT_EQ(kind_of([&] { push_wal(r, put_file("000000010000000000000002", make_segment(42, 1, 2, kSeg, 1))); }),
            ErrorKind::InvalidInput);
  EXPECT_EQ(kind_of([&] { push_wal(r, put_file("000000010000000000000003", make_segment(42, 2, 3, kSeg, 3))); }),
            ErrorKind::InvalidInput);
  EXPECT_EQ(kind_of([&] { push_wal(r, put_file("000000010000000000000004.partial", make_segment(42, 1, 4, kSeg, 5))); }),
            ErrorKind::InvalidInput);
  EXPECT_FALSE(std::filesystem::exists(dir1 + "000000010000000000000002"));
  EXPECT_FALSE(std::filesystem::exists(dir1 + "000000010000000000000003"));
  EXPECT_FALSE(std::filesystem::exists(dir1 + "000000010000000000000004.partial"));
  try {
    push_wal(r, put_file("000000010000000000000002", make_segment(42, 1, 2, kSeg, 1)));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("000000010000000000000002: segment header says position 0/100000, name says "
                                         "0/200000; not archived"),
              std::string::npos)
        << e.what();
  }
  // The first segment of a new timeline carries its parent's timeline: archived.
  EXPECT_EQ(push_wal(r, put_file("000000020000000000000002", make_segment(42, 1, 2, kSeg, 2))).outcome,
            PushOutcome::Stored);
}

TEST_F(Fixture, FetchRefusesAnotherSystemsSegmentAndAShortOne) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1)));
  // Objects written past wal-push's checks (a copy by hand, a sync tool): valid objects, wrong content.
  Bytes foreign = make_segment(4242, 1, 2, kSeg, 2);
  SpanSource fsrc(foreign);
  r.put_object("wal/0000000100000000/000000010000000000000002", fsrc);
  Bytes shortseg = make_segment(42, 1, 3, kSeg, 3);
  shortseg.resize(kSeg / 2);
  SpanSource ssrc(shortseg);
  r.put_object("wal/0000000100000000/000000010000000000000003", ssrc);
  auto r2 = repo();
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, "000000010000000000000002", dir / "x"); }), ErrorKind::Foreign);
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, "000000010000000000000003", dir / "x"); }), ErrorKind::Corruption);
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

TEST_F(Fixture, OnlyTheRepositoryOfTheClustersSystemAnswers) {
  auto r = repo();
  push_wal(r, put_file(kName, make_segment(42, 1, 1)));
  auto r2 = repo();
  // pg_control says another system: neither "missing" nor a file.
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, kName, dir / "x", 43); }), ErrorKind::Foreign);
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, "000000010000000000000009", dir / "x", 43); }), ErrorKind::Foreign);
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, "00000002.history", dir / "x", 43); }), ErrorKind::Foreign);
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
  EXPECT_EQ(fetch_wal(r2, "000000010000000000000009", dir / "x", 42), FetchOutcome::Missing);
  EXPECT_EQ(fetch_wal(r2, kName, dir / "x", 42), FetchOutcome::Fetched);
}

TEST(StaleTempFiles, OnlyFilesOfDeadProcessesAreRemoved) {
  TempDir dir;
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ::waitpid(child, &status, 0);  // now a pid that names no process (unless reused at once)
  auto temp = [&](pid_t pid) {
    return std::string(kTempPrefix) + "RECOVERYXLOG." + std::to_string(pid) + ".0.0badcafe";
  };
  for (const auto& n : {temp(child), temp(::getpid()), temp(::getppid()), std::string("RECOVERYXLOG"),
                        std::string(kTempPrefix) + "odd"}) {
    write_file(dir / n, as_bytes("x"));
  }
  EXPECT_EQ(remove_stale_temp_files(dir.path()), 1);
  EXPECT_FALSE(std::filesystem::exists(dir / temp(child)));
  EXPECT_TRUE(std::filesystem::exists(dir / temp(::getpid())));
  EXPECT_TRUE(std::filesystem::exists(dir / temp(::getppid())));
  EXPECT_TRUE(std::filesystem::exists(dir / "RECOVERYXLOG"));
  EXPECT_TRUE(std::filesystem::exists(dir / (std::string(kTempPrefix) + "odd")));
}

TEST_F(Fixture, HistoryFilesNeedNoIdentityButSegmentsDo) {
  auto r = repo();
  push_wal(r, put_file("00000002.history", as_bytes("1\t0/5000000\tno recovery target specified\n")));
  auto r2 = repo();
  EXPECT_EQ(fetch_wal(r2, "00000002.history", dir / "x"), FetchOutcome::Fetched);
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, "00000003.history", dir / "y"); }), ErrorKind::Config);  // not "missing"
  EXPECT_EQ(kind_of([&] { fetch_wal(r2, kName, dir / "y"); }), ErrorKind::Config);
  EXPECT_FALSE(std::filesystem::exists(dir / "y"));
}
