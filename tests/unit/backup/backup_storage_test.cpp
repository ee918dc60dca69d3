// base-push asks the storage what it can do (Storage::atomic_create, Storage::sweep_dead_writers),
// never which backend it has.
#include <gtest/gtest.h>
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

// A temporary file of the fs backend in `dir`: of a live writer (this process), or of a writer of
// another host idle for two days (provably dead to the sweep, like a killed run's).
std::string temporary(const std::string& dir, bool live) {
  sfs::create_directories(dir);
  const std::string owner = live ? std::to_string(::getpid()) + "@" + fs_host_tag() : "1@0123456789abcdef";
  std::string path = dir + "/" + kTempPrefix + "bundle-0." + owner + ".0.0badf00d";
  std::ofstream(path) << "partial bundle";
  if (!live) sfs::last_write_time(path, sfs::file_time_type::clock::now() - std::chrono::hours(48));
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
  // A store whose create-if-absent put checked its own object after a settle time (S3 without
  // conditional writes): no second pause before the claim is read back.
  using std::chrono::milliseconds;
  EXPECT_EQ(claim_read_back_pause(memory, milliseconds(500)), milliseconds(500));
  struct Confirmed : testing::MemoryStorage {
    bool create_confirmed() override { return true; }
  } confirmed;
  EXPECT_EQ(claim_read_back_pause(confirmed, milliseconds(500)), milliseconds(0));
}

// base-push hands its claim's create-if-absent check to ClaimOptions::confirm_later (run before its
// manifest) on a store that checks later (the pause before the read-back: ClaimSettlesOnlyWithoutAtomicCreate).
TEST(BackupStorage, AClaimsDeferredCheckIsTheCallersToRun) {
  testing::CheckedLaterStorage st;
  DeferredConfirms later;
  ClaimOptions co = base_push_claim_options(st);
  co.confirm_later = &later;
  BackupClaim c = claim_backup_label(st, co);
  EXPECT_TRUE(claim_holds(st, c));
  EXPECT_TRUE(st.checked.empty());
  later.run();
  EXPECT_EQ(st.checked, std::vector<std::string>{keys::backup_claim(c.label)});
}

// The newest `max_dirs` backup folders lose their dead writers' temporaries; older folders, live
// writers' files and the objects stay.
TEST(BackupStorage, SweepOfKilledRunsReachesTheNewestBackupFolders) {
  testing::TempDir dir;
  auto fs = make_fs_storage(dir.path());
  const std::string backups = dir.path() + "/" + keys::backups_prefix();
  const std::string oldest = temporary(backups + "20260101T000000Z-F", false);
  const std::string newer = temporary(backups + "20260102T000000Z-F", false);
  const std::string newest = temporary(backups + "20260103T000000Z-F", false);
  const std::string live = temporary(backups + "20260103T000000Z-F", true);
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
