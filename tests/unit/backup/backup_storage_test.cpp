// base-push asks the storage what it can do (Storage::atomic_create, Storage::sweep_dead_writers),
// never which backend it has.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/backup/backup.h"
#include "common/backup/leftovers.h"
#include "common/base/fs.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

namespace sfs = std::filesystem;

long dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

// A temporary file of the fs backend in `dir`, written by `pid` on this host.
std::string temporary(const std::string& dir, long pid) {
  sfs::create_directories(dir);
  std::string path = dir + "/" + kTempPrefix + "bundle-0." + std::to_string(pid) + "@" + fs_host_tag() + ".0.0badf00d";
  std::ofstream(path) << "partial bundle";
  return path;
}

TEST(BackupStorage, FsCreatesAtomicallyOtherStoresDoNotSayTheyDo) {
  testing::TempDir dir;
  EXPECT_TRUE(make_fs_storage(dir.path())->atomic_create());
  testing::MemoryStorage memory;  // the default: create-if-absent may be HEAD-then-PUT
  EXPECT_FALSE(memory.atomic_create());
}

TEST(BackupStorage, ClaimSettlesOnlyWithoutAtomicCreate) {
  testing::TempDir dir;
  auto fs = make_fs_storage(dir.path());
  EXPECT_EQ(base_push_claim_options(*fs).settle, std::chrono::milliseconds(0));
  testing::MemoryStorage memory;
  EXPECT_EQ(base_push_claim_options(memory).settle, std::chrono::milliseconds(500));
  BackupClaim c = claim_backup_label(*fs, base_push_claim_options(*fs));  // the real clock and waits
  EXPECT_TRUE(claim_holds(*fs, c));
}

// The newest `max_dirs` backup folders lose their dead writers' temporaries; older folders, live
// writers' files and the objects stay.
TEST(BackupStorage, SweepOfKilledRunsReachesTheNewestBackupFolders) {
  testing::TempDir dir;
  auto fs = make_fs_storage(dir.path());
  const std::string backups = dir.path() + "/" + keys::backups_prefix();
  const long dead = dead_pid();
  const std::string oldest = temporary(backups + "20260101T000000Z-F", dead);
  const std::string newer = temporary(backups + "20260102T000000Z-F", dead);
  const std::string newest = temporary(backups + "20260103T000000Z-F", dead);
  const std::string live = temporary(backups + "20260103T000000Z-F", ::getpid());
  write_all(*fs, keys::backup_claim("20260103T000000Z-F"), as_bytes("{}"));
  EXPECT_EQ(fs->sweep_dead_writers(keys::backups_prefix(), 2), 2u);
  EXPECT_TRUE(sfs::exists(oldest));
  EXPECT_FALSE(sfs::exists(newer));
  EXPECT_FALSE(sfs::exists(newest));
  EXPECT_TRUE(sfs::exists(live));
  EXPECT_TRUE(fs->head(keys::backup_claim("20260103T000000Z-F")));
  sweep_killed_runs(*fs, 64);  // base-push's call reaches the older folder too
  EXPECT_FALSE(sfs::exists(oldest));
  EXPECT_TRUE(sfs::exists(live));
}

TEST(BackupStorage, StoresWithoutTemporariesSweepNothing) {
  testing::MemoryStorage memory;
  memory.objects[keys::backup_claim("20260103T000000Z-F")] = Bytes{'{', '}'};
  EXPECT_EQ(memory.sweep_dead_writers(keys::backups_prefix(), 64), 0u);
  sweep_killed_runs(memory, 64);
  EXPECT_EQ(memory.objects.size(), 1u);
}

}  // namespace
}  // namespace pgvault
