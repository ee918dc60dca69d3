// The repository layout (keys::, layout.h) and the one listing of backup folders (backups.h).
#include "common/repo/layout.h"

#include <gtest/gtest.h>

#include "common/repo/backups.h"
#include "common/repo/repo.h"
#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::MemoryStorage;

TEST(Layout, EveryBackupObjectIsNamedUnderItsFolder) {
  EXPECT_EQ(keys::backup_prefix("L"), "backups/L/");
  EXPECT_EQ(keys::backup_claim("L"), "backups/L/claim");
  EXPECT_EQ(keys::backup_tombstone("L"), "backups/L/deleting");
  EXPECT_EQ(keys::lock("retention"), "locks/retention");
  EXPECT_EQ(keys::marker(), "pgvault.repo.json");
  EXPECT_EQ(keys::key_record(), "pgvault.key.json");
  for (const std::string& key : {keys::backup_manifest("L"), keys::backup_bundle("L", 3), keys::backup_claim("L"),
                                 keys::backup_tombstone("L")}) {
    auto parsed = keys::parse_backup_key(key);
    ASSERT_TRUE(parsed) << key;
    EXPECT_EQ(parsed->label, "L");
    EXPECT_EQ(keys::backup_prefix(parsed->label) + parsed->name, key);
  }
}

TEST(Layout, ParseBackupKeyRejectsKeysOutsideAFolder) {
  for (const std::string key : {"backups/", "backups/L", "backups//x", "wal/backups/L/x", "backupsL/x", "pgvault.json"}) {
    EXPECT_FALSE(keys::parse_backup_key(key)) << key;
  }
  auto nested = keys::parse_backup_key("backups/L/sub/x");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->label, "L");
  EXPECT_EQ(nested->name, "sub/x");
}

TEST(Layout, FolderOfAKey) {
  EXPECT_EQ(keys::folder_of(keys::wal(*WalFileName::parse("000000010000000A000000FF"))), "wal/000000010000000A/");
  EXPECT_EQ(keys::folder_of(keys::wal(*WalFileName::parse("00000002.history"))), "wal/");
  EXPECT_EQ(keys::folder_of(keys::backup_bundle("L", 0)), "backups/L/");
  EXPECT_EQ(keys::folder_of(keys::identity()), "");
}

// One listing gives every folder: its objects and bytes, its newest mtime, whether it has a manifest and
// a tombstone; keys that are not inside a folder are skipped; folders come by label.
TEST(BackupFolders, OneListingDescribesEveryFolder) {
  MemoryStorage st;
  auto put = [&](const std::string& key, std::size_t size) { write_all(st, key, Bytes(size, 1)); };
  put(keys::backup_bundle("B", 0), 100);
  put(keys::backup_manifest("B"), 10);
  put(keys::backup_bundle("A", 0), 7);
  put(keys::backup_claim("A"), 3);
  put(keys::backup_tombstone("C"), 2);
  put("backups/stray", 1);
  put("backups/Bx/manifest.json.old", 1);  // not B's manifest
  std::vector<BackupFolder> f = list_backup_folders(st);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].label, "A");
  EXPECT_EQ(f[0].objects, 2u);
  EXPECT_EQ(f[0].stored_bytes, 10u);
  EXPECT_FALSE(f[0].has_manifest);
  EXPECT_FALSE(f[0].has_tombstone);
  EXPECT_EQ(f[1].label, "B");
  EXPECT_EQ(f[1].stored_bytes, 110u);
  EXPECT_TRUE(f[1].has_manifest);
  EXPECT_EQ(f[2].label, "Bx");
  EXPECT_FALSE(f[2].has_manifest);
  EXPECT_EQ(f[3].label, "C");
  EXPECT_TRUE(f[3].has_tombstone);
  EXPECT_FALSE(f[3].has_manifest);
}

// list_backups is list_backup_folders with the manifests read: unlike load_inventory it throws on a
// manifest that cannot be read.
TEST(BackupFolders, ListBackupsReadsTheManifestsOfTheSameFolders) {
  Repository repo(std::make_unique<MemoryStorage>(), Config{});
  repo.put_bytes(keys::backup_manifest("20260101T000000Z-F"), as_bytes("{not json"));
  repo.put_bytes(keys::backup_bundle("20260102T000000Z-F", 0), as_bytes("x"));
  EXPECT_THROW_KIND(list_backups(repo), ErrorKind::Corruption);
  repo.storage().remove(keys::backup_manifest("20260101T000000Z-F"));
  BackupListing l = list_backups(repo);
  EXPECT_TRUE(l.complete.empty());
  EXPECT_EQ(l.incomplete, std::vector<std::string>{"20260102T000000Z-F"});
}
