// retention-prune over several repositories (common/retention/prune_all.h): each by its own policy, one
// report each, and a failing repository does not stop the ones after it.
#include "common/retention/prune_all.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/repo/repo.h"
#include "support/test_support.h"

using namespace pgvault;

namespace {

Config repo_config(const std::string& name, const std::string& path, int full_backups, bool create) {
  Config c;
  c.repository.name = name;
  c.repository.path = path;
  c.retention.full_backups = full_backups;
  if (create) Repository(open_storage(c), c).initialise();
  return c;
}

TEST(PruneRepositories, EachByItsOwnPolicyAndAFailureDoesNotStopTheNext) {
  pgvault::testing::TempDir dir;
  std::vector<Config> configs = {repo_config("primary", dir.path() + "/a", 2, true),
                                 repo_config("broken", dir.path() + "/missing", 3, false),
                                 repo_config("cloud", dir.path() + "/c", 4, true)};
  PruneOptions opts;
  opts.dry_run = true;
  opts.json = true;
  opts.now = 1700000000;
  std::vector<PruneFailure> failures;
  nlohmann::json j = nlohmann::json::parse(prune_repositories(configs, opts, failures));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].repository, "broken");
  ASSERT_EQ(j["repositories"].size(), 3u);
  EXPECT_EQ(j["repositories"][0]["report"]["policy"]["full_backups"], 2);
  EXPECT_EQ(j["repositories"][1]["ok"], false);
  EXPECT_EQ(j["repositories"][1]["error_kind"], "not-initialised");
  EXPECT_EQ(j["repositories"][2]["name"], "cloud");
  EXPECT_EQ(j["repositories"][2]["report"]["policy"]["full_backups"], 4);
  Error e = prune_failures_error(failures);
  EXPECT_EQ(e.kind(), ErrorKind::NotInitialised);
  EXPECT_NE(std::string(e.what()).find("broken"), std::string::npos);

  // Text: one report per repository after its name; one repository alone: its report unchanged.
  opts.json = false;
  failures.clear();
  std::string text = prune_repositories(configs, opts, failures);
  EXPECT_NE(text.find("repository primary:\n"), std::string::npos) << text;
  EXPECT_NE(text.find("repository broken: failed: "), std::string::npos) << text;
  EXPECT_NE(text.find("repository cloud:\n"), std::string::npos) << text;
  std::string one = prune_repositories({configs[0]}, opts, failures);
  EXPECT_EQ(one.find("repository primary:"), std::string::npos) << one;
}

}  // namespace
