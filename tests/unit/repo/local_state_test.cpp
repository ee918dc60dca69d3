// Where local state lives (repo/local_state.h): the configured folder, the shared one, the per-user one.
#include "common/repo/local_state.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::TempDir;

namespace {

bool exists(const std::string& p) { return std::filesystem::exists(p); }

TEST(LocalState, TheConfiguredFolderWins) {
  TempDir dir;
  EXPECT_EQ(local_state_base_in(dir.path(), "/x/y", "state", true, 1000), "/x/y");
  EXPECT_FALSE(exists(dir / "state"));
}

TEST(LocalState, AUserCreatesTheSharedFolderAReaderOnlyFindsIt) {
  TempDir dir;
  EXPECT_EQ(local_state_base_in(dir.path(), "", "state", false, 1000), "/var/tmp/pgvault-1000/state");
  EXPECT_FALSE(exists(dir / "state"));
  EXPECT_EQ(local_state_base_in(dir.path(), "", "state", true, 1000), dir / "state");
  EXPECT_TRUE(exists(dir / "state"));
  EXPECT_EQ(local_state_base_in(dir.path(), "", "state", false, 1000), dir / "state");
}

// A tool run once as root must not leave a root-owned 0700 shared folder that shuts out the postgres
// user (and that a package installed later finds taken): root uses its own folder until the shared one
// exists, and uses the shared one once it does.
TEST(LocalState, RootNeverCreatesTheSharedFolder) {
  TempDir dir;
  EXPECT_EQ(local_state_base_in(dir.path(), "", "owed", true, 0), "/var/tmp/pgvault-0/owed");
  EXPECT_FALSE(exists(dir / "owed"));
  std::filesystem::create_directory(dir / "owed");
  EXPECT_EQ(local_state_base_in(dir.path(), "", "owed", true, 0), dir / "owed");
}

}  // namespace
