// Several repositories: [repositories.NAME] tables, their retention, overrides and --repo narrowing.
#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "config/config_error.h"
#include "common/config/config.h"

using namespace pgvault;
using pgvault::testing_config::config_error;

namespace {

const char* kTwo = R"(
[repository]
path = "/srv/local"
[retention]
full_backups = 2
window = "7d"
[repositories.cloud]
type = "s3"
bucket = "b"
access_key_id = "a"
secret_access_key = "s"
required = false
max_owed_segments = 10
[repositories.cloud.retention]
full_backups = 4
)";

}  // namespace

TEST(ConfigRepositories, OneRepositoryIsThePrimary) {
  Config c = parse_config("", "empty", false);
  ASSERT_EQ(c.repositories.size(), 1u);
  EXPECT_EQ(c.repositories[0].repository.name, "primary");
  EXPECT_TRUE(c.repositories[0].repository.required);
  EXPECT_EQ(c.repositories[0].repository.path, "/var/lib/pgvault/repo");
}

TEST(ConfigRepositories, TablesFollowThePrimaryInFileOrderWithTheirOwnRetention) {
  Config c = parse_config(kTwo, "test.toml", false);
  ASSERT_EQ(c.repositories.size(), 2u);
  EXPECT_EQ(c.repositories[0].repository.name, "primary");
  EXPECT_EQ(c.repositories[0].retention.full_backups, 2);
  const auto& cloud = c.repositories[1];
  EXPECT_EQ(cloud.repository.name, "cloud");
  EXPECT_EQ(cloud.repository.type, "s3");
  EXPECT_FALSE(cloud.repository.required);
  EXPECT_EQ(cloud.repository.max_owed_segments, 10);
  EXPECT_EQ(cloud.retention.full_backups, 4);
  EXPECT_EQ(cloud.retention.window, "7d");  // inherited from [retention]
  EXPECT_EQ(c.repository.name, "primary");   // single-repository tools still see [repository]
}

TEST(ConfigRepositories, SelectNarrowsToOneRepositoryAndItsOrigins) {
  Config c = parse_config(kTwo, "test.toml", false);
  Config cloud = select_repository(c, "cloud");
  EXPECT_EQ(cloud.repository.bucket, "b");
  EXPECT_EQ(cloud.retention.full_backups, 4);
  ASSERT_EQ(cloud.repositories.size(), 1u);
  EXPECT_EQ(cloud.where("repository.bucket"), "test.toml line 9");
  EXPECT_EQ(cloud.where("retention.full_backups"), "test.toml line 15");
  Config primary = select_repository(c, "primary");
  EXPECT_EQ(primary.repository.path, "/srv/local");
  ASSERT_EQ(primary.repositories.size(), 1u);
  EXPECT_EQ(repository_configs(c).size(), 2u);
  try {
    select_repository(c, "nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_NE(std::string(e.what()).find("no repository named \"nope\" (configured: primary, cloud)"), std::string::npos)
        << e.what();
  }
}

TEST(ConfigRepositories, OverridesReachANamedRepositoryAndItsRetention) {
  Config c = parse_config(kTwo, "test.toml", false,
                          {{"repositories.cloud.prefix", "p"}, {"repositories.cloud.retention.window", "30d"}});
  EXPECT_EQ(c.repositories[1].repository.prefix, "p");
  EXPECT_EQ(c.repositories[1].retention.window, "30d");
  EXPECT_EQ(c.repositories[0].retention.window, "7d");
  EXPECT_NE(config_error(kTwo, {{"repositories.other.prefix", "p"}}).find("no [repositories.other] table"),
            std::string::npos);
}

TEST(ConfigRepositories, RefusesBadTablesNamingTheLine) {
  EXPECT_NE(config_error("[repositories.cloud]\ntype = \"s3\"\n").find("test.toml line 2: [repositories.cloud] bucket must be set"),
            std::string::npos);
  EXPECT_NE(config_error("[repositories.cloud]\npath = \"/x\"\nbogus = 1\n").find("line 3: unknown key bogus in [repositories.cloud]"),
            std::string::npos);
  EXPECT_NE(config_error("[repositories.cloud]\nname = \"x\"\npath = \"/x\"\n").find("the table's name is the repository's name"),
            std::string::npos);
  EXPECT_NE(config_error("[repositories.\"a b\"]\npath = \"/x\"\n").find("must be 1-64 letters"), std::string::npos);
  EXPECT_NE(config_error("[repositories]\nx = 1\n").find("holds tables"), std::string::npos);
  EXPECT_NE(config_error("[repository]\nname = \"a\"\n[repositories.a]\npath = \"/x\"\n").find("two repositories are named \"a\""),
            std::string::npos);
  EXPECT_NE(config_error("[repositories.copy]\npath = \"/var/lib/pgvault/repo/\"\n").find("has the location of another"),
            std::string::npos);
  EXPECT_NE(config_error("[repositories.c]\npath = \"/x\"\nmax_owed_age = \"0h\"\n").find("max_owed_age"), std::string::npos);
}
