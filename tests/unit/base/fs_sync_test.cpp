// FilesystemSync and sync_written_file: files on a covered filesystem are left to one syncfs at the end,
// every other file is fsynced when written, and a failed sync is an error naming the file or location.
#include "common/base/fs_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>

#include "support/sync_fakes.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::FakeSync;

Fd create(const std::string& path) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) throw errno_error("create " + path, errno);
  write_full(fd.get(), as_bytes(std::string("data")), path);
  return fd;
}

TEST(FsSync, CoveredFilesAreLeftToOneSyncfsOthersAreFsynced) {
  testing::TempDir tmp;
  FakeSync fake(true);
  {
    FilesystemSync sync;
    ASSERT_TRUE(sync.add(tmp.path()));
    EXPECT_TRUE(sync.covers(tmp.path()));
    for (int i = 0; i < 5; ++i) {
      Fd fd = create(tmp / ("f" + std::to_string(i)));
      sync_written_file(fd.get(), tmp / "f", 4);
    }
    EXPECT_EQ(FakeSync::fsyncs.load(), 0);
    sync.sync();
    EXPECT_EQ(FakeSync::syncfs_calls.load(), 1);
  }
  // No FilesystemSync any more: each file is fsynced when written.
  Fd fd = create(tmp / "later");
  sync_written_file(fd.get(), tmp / "later", 4);
  EXPECT_EQ(FakeSync::fsyncs.load(), 1);
}

TEST(FsSync, WithoutSyncfsErrorReportsEveryFileIsFsynced) {
  testing::TempDir tmp;
  FakeSync fake(false);
  FilesystemSync sync;
  EXPECT_FALSE(sync.add(tmp.path()));
  EXPECT_FALSE(sync.covers(tmp.path()));
  for (int i = 0; i < 7; ++i) {
    Fd fd = create(tmp / ("f" + std::to_string(i)));
    sync_written_file(fd.get(), tmp / "f", 4);
  }
  EXPECT_EQ(FakeSync::fsyncs.load(), 7);
  sync.sync();
  EXPECT_EQ(FakeSync::syncfs_calls.load(), 0);
}

TEST(FsSync, OneSyncfsPerFilesystemAndAFailureNamesEveryLocationOnIt) {
  testing::TempDir tmp;
  std::filesystem::create_directories(tmp / "a");
  std::filesystem::create_directories(tmp / "b");
  FakeSync fake(true);
  FilesystemSync sync;
  ASSERT_TRUE(sync.add(tmp / "a"));
  ASSERT_TRUE(sync.add(tmp / "b"));  // same filesystem
  EXPECT_TRUE(sync.covers(tmp / "b"));
  FakeSync::syncfs_errno = EIO;
  try {
    sync.sync();
    FAIL() << "a write-back error must fail the sync";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    std::string msg = e.what();
    EXPECT_NE(msg.find(tmp / "a"), std::string::npos) << msg;
    EXPECT_NE(msg.find(tmp / "b"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::strerror(EIO)), std::string::npos) << msg;
  }
  EXPECT_EQ(FakeSync::syncfs_calls.load(), 1);
}

TEST(FsSync, AFailedFsyncNamesTheFile) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  Fd r(p[0]), w(p[1]);
  try {
    sync_written_file(w.get(), "/restored/base/5/1259", 4);  // fsync of a pipe: EINVAL
    FAIL() << "fsync of a pipe must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find("/restored/base/5/1259"), std::string::npos) << e.what();
  }
}

TEST(FsSync, RealSyncfsOnThisFilesystem) {
  testing::TempDir tmp;
  FilesystemSync sync;
  bool covered = sync.add(tmp.path());
  Fd fd = create(tmp / "f");
  sync_written_file(fd.get(), tmp / "f", 2u << 20);  // large: write-back started (or fsynced)
  fd.close(tmp / "f");
  EXPECT_NO_THROW(sync.sync());
  EXPECT_EQ(covered, syncfs_reports_errors(Fd(::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY)).get()));
}

// WritebackAhead starts the write-back of each whole 16 MiB step once it is written, never the same
// bytes twice, and starts again from 0 for the next file.
TEST(FsSync, WritebackAheadStartsEachWholeStepOnce) {
  testing::FakeSync fake(true);
  testing::TempDir tmp;
  const std::string path = tmp / "f";
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd);
  constexpr std::uint64_t kMiB = 1u << 20;
  WritebackAhead ahead;
  for (int i = 0; i < 8; ++i) ahead.wrote(fd.get(), 5 * kMiB);  // 40 MiB
  ahead.wrote(fd.get(), 1);
  using Calls = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  EXPECT_EQ(testing::FakeSync::writebacks, (Calls{{0, 16 * kMiB}, {16 * kMiB, 16 * kMiB}}));
  ahead.reset();
  ahead.wrote(fd.get(), 40 * kMiB);  // one write past two steps: both at once
  EXPECT_EQ(testing::FakeSync::writebacks, (Calls{{0, 16 * kMiB}, {16 * kMiB, 16 * kMiB}, {0, 32 * kMiB}}));
  fd.close(path);
}

}  // namespace
}  // namespace pgvault
