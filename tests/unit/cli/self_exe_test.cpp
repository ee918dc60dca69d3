#include "common/cli/self_exe.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "support/test_support.h"

using namespace pgvault;

TEST(SelfExe, FindsAnExecutableBesideThisOne) {
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  EXPECT_EQ(sibling_executable(self.filename().string(), "self_exe_test"), self.string());
}

TEST(SelfExe, AMissingSiblingIsAConfigErrorNamingBoth) {
  try {
    sibling_executable("no-such-pgvault-tool", "pitr-prepare");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    std::string msg = e.what();
    EXPECT_NE(msg.find("no-such-pgvault-tool is not installed beside pitr-prepare ("), std::string::npos) << msg;
  }
}
