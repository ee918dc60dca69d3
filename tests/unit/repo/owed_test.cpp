// The owed queue (repo/owed.h): durable entries, WAL names only, one folder per repository.
#include "common/repo/owed.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::TempDir;

namespace {

constexpr const char* kSeg1 = "000000010000000000000001";
constexpr const char* kSeg2 = "000000010000000000000002";
constexpr const char* kSeg3 = "000000010000000000000003";

struct OwedFixture : ::testing::Test {
  TempDir dir;
  Config config;
  void SetUp() override {
    config.push.owed_dir = dir / "owed";
    config.repository.name = "cloud";
    config.repository.type = "s3";
    config.repository.endpoint = "http://s3.example";
    config.repository.bucket = "b";
  }
};

std::vector<std::string> names(const std::vector<OwedEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name);
  return out;
}

}  // namespace

TEST_F(OwedFixture, AddListRemoveOldestFirst) {
  OwedQueue q(config);
  q.add(kSeg3, 300);
  q.add(kSeg1, 100);
  q.add("00000002.history", 150);
  q.add(kSeg2, 200);
  EXPECT_EQ(names(q.list()), (std::vector<std::string>{kSeg1, kSeg2, kSeg3, "00000002.history"}));
  q.remove(kSeg2);
  q.remove(kSeg2);  // absent is fine
  EXPECT_EQ(names(q.list()), (std::vector<std::string>{kSeg1, kSeg3, "00000002.history"}));
  // Another queue object over the same folder (a later call) sees the same entries and times.
  auto again = OwedQueue(config).list();
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].since, 100);
  EXPECT_EQ(again[1].since, 300);
}

TEST_F(OwedFixture, AddKeepsTheFirstSince) {
  OwedQueue q(config);
  q.add(kSeg1, 100);
  q.add(kSeg1, 500);
  auto entries = q.list();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].since, 100);
}

TEST_F(OwedFixture, SkipsWhatIsNotAWalFileName) {
  OwedQueue q(config);
  q.add(kSeg1, 100);
  for (const char* bad : {"../../etc/passwd", "notes.txt", "00000001000000000000000G", "0000000100000000000000011"}) {
    std::string p = q.dir() + "/" + std::filesystem::path(bad).filename().string();
    std::ofstream(p) << "1\n";
  }
  std::filesystem::create_directory(q.dir() + "/" + kTempPrefix + "catch-up.1.0");
  std::ofstream(q.dir() + "/" + kTempPrefix + kSeg2 + ".1.2.ab") << "1\n";
  EXPECT_EQ(names(q.list()), (std::vector<std::string>{kSeg1}));
  EXPECT_THROW_KIND(q.add("../x", 1), ErrorKind::InvalidInput);
  EXPECT_THROW_KIND(q.remove("notes.txt"), ErrorKind::InvalidInput);
  EXPECT_TRUE(std::filesystem::exists(q.dir() + "/notes.txt"));
}

TEST_F(OwedFixture, StatusCountsAndOldest) {
  EXPECT_EQ(owed_status(config).segments, 0u);  // absent queue: empty, and nothing created
  EXPECT_FALSE(std::filesystem::exists(dir / "owed"));
  OwedQueue q(config);
  q.add(kSeg2, 200);
  q.add(kSeg1, 250);
  OwedStatus s = owed_status(config);
  EXPECT_EQ(s.repository, "cloud");
  EXPECT_EQ(s.segments, 2u);
  ASSERT_TRUE(s.oldest_since);
  EXPECT_EQ(*s.oldest_since, 200);
}

TEST_F(OwedFixture, ARenamedOrRelocatedRepositoryHasItsOwnQueue) {
  OwedQueue(config).add(kSeg1, 100);
  Config moved = config;
  moved.repository.bucket = "other";
  Config renamed = config;
  renamed.repository.name = "cloud2";
  EXPECT_EQ(owed_status(moved).segments, 0u);
  EXPECT_EQ(owed_status(renamed).segments, 0u);
  EXPECT_NE(OwedQueue(moved).dir(), OwedQueue(config).dir());
  EXPECT_EQ(std::filesystem::path(OwedQueue(config).dir()).parent_path(), std::filesystem::path(dir / "owed"));
}

TEST_F(OwedFixture, AnFsPathWithTrailingSlashesIsTheSameRepository) {
  Config fs = config;
  fs.repository.type = "fs";
  fs.repository.path = "/var/lib/pgvault/repo";
  OwedQueue(fs).add(kSeg1, 100);
  Config slashed = fs;
  slashed.repository.path = "/var/lib/pgvault/repo//";
  EXPECT_EQ(owed_status(slashed).segments, 1u);
  Config elsewhere = fs;
  elsewhere.repository.path = "/var/lib/pgvault/repo2";
  EXPECT_EQ(owed_status(elsewhere).segments, 0u);
}

TEST_F(OwedFixture, EntriesAreFilesWrittenWhole) {
  OwedQueue q(config);
  q.add(kSeg1, 1234);
  std::ifstream in(q.dir() + "/" + kSeg1);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "1234\n");
  // No temporary file is left behind.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(q.dir())) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1u);
}

TEST_F(OwedFixture, TheBackOffTimeIsKeptBesideTheEntriesButIsNoEntry) {
  OwedQueue q(config);
  EXPECT_FALSE(q.retry_after());
  q.set_retry_after(1700000030);
  q.set_retry_after(1700000060);  // replaced
  EXPECT_EQ(q.retry_after(), 1700000060);
  EXPECT_TRUE(std::filesystem::exists(q.dir() + "/.retry-after"));
  q.add(kSeg1, 1700000000);
  EXPECT_EQ(names(q.list()), (std::vector<std::string>{kSeg1}));
  EXPECT_EQ(owed_status(config).segments, 1u);
  q.clear_retry_after();
  q.clear_retry_after();  // absent is fine
  EXPECT_FALSE(q.retry_after());
  { std::ofstream(q.dir() + "/.retry-after") << "garbage\n"; }
  EXPECT_FALSE(q.retry_after());  // unreadable: none
}

TEST_F(OwedFixture, EmptyCountsOnlyEntries) {
  OwedQueue q(config);
  EXPECT_TRUE(q.empty());  // no folder yet
  q.set_retry_after(1700000030);
  std::ofstream(q.dir() + "/notes.txt") << "1\n";
  std::ofstream(q.dir() + "/" + kTempPrefix + kSeg2 + ".1.2.ab") << "1\n";
  EXPECT_TRUE(q.empty());  // the back-off file, junk and an interrupted add() are no entries
  q.add(kSeg1, 100);
  EXPECT_FALSE(q.empty());
  q.remove(kSeg1);
  EXPECT_TRUE(q.empty());
}
