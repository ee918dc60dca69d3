// wal-fetch across several repositories (fetch_wal_any, restore_command, the prefetch worker): the order
// they are tried in, what falls through to the next one, and when the answer is "not in the archive".
#include <gtest/gtest.h>

#include <filesystem>

#include "archive/archive_fixture.h"
#include "common/archive/archive.h"
#include "common/archive/spool.h"
#include "common/base/fs.h"

using namespace pgvault;
using namespace pgvault::archive_test;
using pgvault::testing::FaultStorage;

namespace {

namespace sfs = std::filesystem;

std::string seg_name(std::uint64_t segno) { return segment_file_name(1, segno, kSeg); }
std::string wal_key(const std::string& name) { return keys::wal(*WalFileName::parse(name)); }

struct FetchRepositories : Fixture {
  std::string near_path = dir / "near", far_path = dir / "far";
  std::string dest = dir / "RECOVERYXLOG";

  Bytes segment(std::uint64_t segno, std::uint64_t sysid = 42, std::uint8_t fill = 0) {
    return make_segment(sysid, 1, static_cast<std::uint8_t>(segno + fill), kSeg, segno);
  }
  Repository at(const std::string& path) { return Repository(make_fs_storage(path), config); }
  // Archives segments first..last of `sysid` into the repository at `path`.
  void archive(const std::string& path, std::uint64_t first, std::uint64_t last, std::uint64_t sysid = 42,
               std::uint8_t fill = 0) {
    auto r = at(path);
    for (std::uint64_t s = first; s <= last; ++s) push_wal(r, put_file(seg_name(s), segment(s, sysid, fill)));
  }
  FetchOutcome fetch(Repository& first, Repository& second, const std::string& name,
                     std::optional<std::uint64_t> control = std::nullopt) {
    return fetch_wal_any({&first, &second}, name, dest, control);
  }
  // A configuration naming both repositories, [repository] first.
  Config two_repositories() {
    Config c = config;
    c.repository.path = near_path;
    Config::RepositoryEntry far{c.repository, c.retention};
    far.repository.name = "far";
    far.repository.path = far_path;
    c.repositories = {{c.repository, c.retention}, far};
    return c;
  }
};

TEST_F(FetchRepositories, TheNearestRepositoryServesFirst) {
  archive(near_path, 1, 2, 42, 0);
  archive(far_path, 1, 2, 42, 100);  // another (valid) copy: shows where the file came from
  auto near = at(near_path), far = at(far_path);
  EXPECT_EQ(fetch(near, far, seg_name(2)), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dest), segment(2, 42, 0));
}

TEST_F(FetchRepositories, ASegmentTheFirstLacksComesFromTheSecond) {
  archive(near_path, 1, 1);
  archive(far_path, 1, 3);
  auto near = at(near_path), far = at(far_path);
  EXPECT_EQ(fetch(near, far, seg_name(3), 42), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dest), segment(3));
}

TEST_F(FetchRepositories, ACorruptCopyIsNeverHandedOverAndTheNextGoodOneIs) {
  archive(near_path, 1, 2);
  archive(far_path, 1, 2);
  const std::string stored = near_path + "/" + wal_key(seg_name(2));
  Bytes bad = read_file(stored);
  bad[bad.size() / 2] ^= 0x01;
  write_file(stored, bad);
  auto near = at(near_path), far = at(far_path);
  EXPECT_EQ(fetch(near, far, seg_name(2), 42), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dest), segment(2));
  for (const auto& e : sfs::directory_iterator(dir.path())) {  // nothing of the corrupt copy is left
    EXPECT_EQ(e.path().filename().string().rfind(kTempPrefix, 0), std::string::npos) << e.path();
  }
  // Alone, the corrupt copy is an error and reaches nothing.
  sfs::remove(dest);
  auto near_again = at(near_path);
  EXPECT_THROW_KIND(fetch_wal_any({&near_again}, seg_name(2), dest, 42), ErrorKind::Corruption);
  EXPECT_FALSE(sfs::exists(dest));
}

TEST_F(FetchRepositories, AnUnreachableRepositoryFallsThroughToTheNext) {
  archive(near_path, 1, 2);
  archive(far_path, 1, 2);
  auto down = std::make_unique<FaultStorage>(make_fs_storage(near_path));
  down->fail = [](const std::string&, const std::string& key) {
    throw Error(ErrorKind::Transient, key + ": connection refused (after retries)");
  };
  Repository near(std::move(down), config);
  auto far = at(far_path);
  EXPECT_EQ(fetch(near, far, seg_name(2), 42), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dest), segment(2));
}

TEST_F(FetchRepositories, MissingOnlyWhenEveryRepositorySaysSo) {
  archive(near_path, 1, 1);
  archive(far_path, 1, 1);
  auto near = at(near_path), far = at(far_path);
  EXPECT_EQ(fetch(near, far, seg_name(2), 42), FetchOutcome::Missing);
  EXPECT_EQ(fetch(near, far, "00000002.history", 42), FetchOutcome::Missing);
  EXPECT_FALSE(sfs::exists(dest));
}

TEST_F(FetchRepositories, OneFailingAndTheOthersMissingIsAnErrorNotTheEndOfTheArchive) {
  archive(near_path, 1, 1);
  archive(far_path, 1, 1);
  auto down = std::make_unique<FaultStorage>(make_fs_storage(far_path));
  down->fail = [](const std::string& op, const std::string& key) {
    if (op == "get" && key.rfind("wal/", 0) == 0) throw Error(ErrorKind::Transient, key + ": timed out");
  };
  auto near = at(near_path);
  Repository far(std::move(down), config);
  EXPECT_THROW_KIND(fetch(near, far, seg_name(2), 42), ErrorKind::Transient);
  // A repository without an identity (a wrong path) fails too, first or last.
  auto nowhere = at(dir / "nowhere");
  EXPECT_THROW_KIND(fetch(near, nowhere, seg_name(2), 42), ErrorKind::Config);
  EXPECT_THROW_KIND(fetch(nowhere, near, seg_name(2), 42), ErrorKind::Config);
  EXPECT_FALSE(sfs::exists(dest));
}

TEST_F(FetchRepositories, ARepositoryOfAnotherSystemIsAFailureNeverASource) {
  archive(near_path, 1, 1, 42);
  archive(far_path, 1, 2, 43);  // another database system, holding the segment asked for
  auto near = at(near_path), far = at(far_path);
  // Checked against pg_control, and without it against the first identity met.
  EXPECT_THROW_KIND(fetch(near, far, seg_name(2), 42), ErrorKind::Foreign);
  EXPECT_THROW_KIND(fetch(near, far, seg_name(2)), ErrorKind::Foreign);
  EXPECT_FALSE(sfs::exists(dest));
  // The foreign one first: passed over, the right system's copy served.
  archive(near_path, 2, 2, 42);
  auto near2 = at(near_path), far2 = at(far_path);
  EXPECT_EQ(fetch(far2, near2, seg_name(2), 42), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dest), segment(2, 42));
}

TEST_F(FetchRepositories, RestoreCommandAndPrefetchUseEveryRepositoryInOrder) {
  archive(near_path, 1, 2);
  archive(far_path, 1, 6);  // the near one lags
  Config c = two_repositories();
  c.fetch.spool = dir / "spool";
  c.fetch.prefetch = 8;
  int spawned = 0;
  EXPECT_EQ(restore_command(c, seg_name(3), dest, [&] { ++spawned; }), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dest), segment(3));
  EXPECT_EQ(spawned, 1);
  prefetch_worker(c, seg_name(3));  // what the spawned worker does
  auto near = at(near_path), far = at(far_path);
  const std::string spool = prefetch_spool_dir(c.fetch.spool, fetch_spool_owner({&near, &far}), 42, false);
  for (std::uint64_t s = 4; s <= 6; ++s) EXPECT_TRUE(sfs::exists(spool + "/" + seg_name(s) + ".ready")) << s;
  EXPECT_FALSE(sfs::exists(spool + "/" + seg_name(7)));
  far.storage().remove(wal_key(seg_name(4)));  // only the spool has it now
  EXPECT_EQ(restore_command(c, seg_name(4), dest, [&] { ++spawned; }), FetchOutcome::Fetched);
  EXPECT_EQ(read_file(dest), segment(4));
  EXPECT_FALSE(sfs::exists(spool + "/" + seg_name(4)));  // handed over from the spool
  EXPECT_EQ(restore_command(c, seg_name(7), dest, [&] { ++spawned; }), FetchOutcome::Missing);
}

TEST_F(FetchRepositories, OneRepositoryKeepsItsOwnSpool) {
  auto only = at(near_path);
  EXPECT_EQ(fetch_spool_owner({&only}), only.describe());
}

}  // namespace

TEST_F(FetchRepositories, OnlyTheLastRepositoryKeepsItsWholeRetryBudgetWhenFallingThroughFast) {
  Config c = two_repositories();
  c.repository.retry_time = 90;
  for (auto& entry : c.repositories) entry.repository.retry_time = 90;
  Config::RepositoryEntry third = c.repositories.back();
  third.repository.name = "third";
  third.repository.path = dir / "third";
  c.repositories.push_back(third);
  const auto fast = open_fetch_repositories(c, FetchPatience::FallThroughFast);
  ASSERT_EQ(fast.size(), 3u);
  EXPECT_EQ(fast[0]->config().repository.retry_time, 1);
  EXPECT_EQ(fast[1]->config().repository.retry_time, 1);
  EXPECT_EQ(fast[2]->config().repository.retry_time, 90);
  for (const auto& r : open_fetch_repositories(c)) EXPECT_EQ(r->config().repository.retry_time, 90);
  // One repository has nothing to fall through to.
  c.repositories.resize(1);
  EXPECT_EQ(open_fetch_repositories(c, FetchPatience::FallThroughFast).front()->config().repository.retry_time, 90);
}
