// Restore and untrusted manifests: unsafe paths, symbolic links, unreadable backups.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "restore/restore_fixture.h"

namespace pgvault {
namespace {

using namespace restore_test;

struct UnsafeCase {
  const char* what;
  std::function<void(BackupManifest&)> edit;
};

std::vector<UnsafeCase> unsafe_cases() {
  return {
      {"../outside/x", [](BackupManifest& m) { m.files[0].path = "../outside/x"; }},
      {"absolute", [](BackupManifest& m) { m.files[0].path = "/outside/x"; }},
      {"inner ..", [](BackupManifest& m) { m.files[0].path = "base/../../outside/x"; }},
      {"empty component", [](BackupManifest& m) { m.files[0].path = std::string("base/") + "/x"; }},
      {"directory ..", [](BackupManifest& m) { m.directories.push_back({"../outside", 0, 0700}); }},
      {"tablespace file ..", [](BackupManifest& m) { m.files.back().tablespace = 16384, m.files.back().path = "../x"; }},
      {"through the tablespace link",
       [](BackupManifest& m) { m.files[0].path = "pg_tblspc/16384/PG_15_202209061/x"; }},
      {"relative tablespace location", [](BackupManifest& m) { m.tablespaces[0].location = "ts/../../outside"; }},
      {"unlisted tablespace", [](BackupManifest& m) { m.files.back().tablespace = 99; }},
  };
}

// Every way a manifest could make a restore write outside the data directory or its tablespace location is
// corruption when the manifest is read: pitr-prepare stops before it writes anything, and verify flags it.
TEST(RestoreTrustTest, UnsafeManifestPathsAreCorruptionAndNothingIsWritten) {
  for (const auto& c : unsafe_cases()) {
    Fixture fx;
    c.edit(fx.m);
    fx.commit();
    RestoreOptions o = fx.options();
    try {
      run_restore(*fx.repo, o);
      ADD_FAILURE() << c.what << ": restored";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption) << c.what << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(keys::backup_manifest(fx.m.label)), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    EXPECT_FALSE(exists(o.pgdata)) << c.what;
    EXPECT_FALSE(exists(fx.tmp / "ts-orig")) << c.what;
    EXPECT_FALSE(exists(fx.tmp / "outside")) << c.what;
    // archive-info --verify flags it.
    Inventory inv = load_inventory(*fx.repo);
    ASSERT_EQ(inv.incomplete.size(), 1u) << c.what;
    EXPECT_EQ(inv.incomplete[0].error_kind, ErrorKind::Corruption);
    EXPECT_NE(inv.incomplete[0].error.find("path"), std::string::npos) << inv.incomplete[0].error;
  }
}

TEST(RestoreTrustTest, ManifestPathRules) {
  EXPECT_EQ(manifest_path_problem("base/5/1259"), "");
  EXPECT_EQ(manifest_path_problem("..data"), "");  // a name that merely starts with dots
  EXPECT_EQ(manifest_path_problem(".", true), "");
  EXPECT_NE(manifest_path_problem("."), "");
  for (const char* bad : {"", "/x", "..", "a/..", "a/../b", "./a", "a/./b", "a//b", "a/"}) {
    EXPECT_NE(manifest_path_problem(bad, true), "") << bad;
  }
  EXPECT_NE(manifest_path_problem(std::string("a\0b", 3)), "");
}

// A symbolic link met on the way down (here one left in the tablespace location, pointing outside, that
// the location check cannot see because it dangles) is never followed.
TEST(RestoreTrustTest, WritesNeverFollowASymbolicLink) {
  Fixture fx;
  fx.commit();
  RestoreOptions o = fx.options();
  std::filesystem::create_directories(fx.tmp / "ts-orig");
  std::filesystem::create_directory_symlink(fx.tmp / "outside", fx.tmp / "ts-orig/PG_15_202209061");
  try {
    run_restore(*fx.repo, o);
    FAIL() << "restored through a symbolic link";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption) << e.what();
    EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(fx.tmp / "outside"));
  EXPECT_FALSE(exists(o.pgdata));
}

// A backup named with --backup whose manifest cannot be used is reported with its own error.
TEST(RestoreTrustTest, NamedUnreadableBackupIsReportedAsSuch) {
  Fixture fx;
  fx.m.files[0].path = "/etc/x";
  fx.commit();
  RestoreOptions o = fx.options();
  o.backup = fx.m.label;
  try {
    run_restore(*fx.repo, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_NE(std::string(e.what()).find("\"/etc/x\" is an absolute path"), std::string::npos) << e.what();
  }
}

// --- archive_mode ---

}  // namespace
}  // namespace pgvault
