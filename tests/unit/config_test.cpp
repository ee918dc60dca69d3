#include "common/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/errors.h"

using namespace pgvault;

namespace {

std::string config_error(const std::string& toml, const ConfigOverrides& o = {}) {
  try {
    parse_config(toml, "test.toml", false, o);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << toml;
  return "";
}

}  // namespace

TEST(Config, DefaultsMatchTheDesign) {
  Config c = parse_config("", "empty", false);
  EXPECT_EQ(c.repository.type, "fs");
  EXPECT_EQ(c.repository.path, "/var/lib/pgvault/repo");
  EXPECT_EQ(c.compression.method, Compression::Zstd);
  EXPECT_EQ(c.compression.level, 3);
  EXPECT_EQ(c.compression.threads, Config::CompressionCfg::kAutoThreads);
  EXPECT_EQ(c.encryption.method, Encryption::None);
  EXPECT_EQ(c.push.parallel, 4);
  EXPECT_EQ(c.fetch.prefetch, 8);
  EXPECT_EQ(c.fetch.on_error, "auto");
  EXPECT_EQ(c.backup.parallel, 0);
  EXPECT_EQ(c.backup.bundle_size, 64ull << 20);
  EXPECT_EQ(c.retention.full_backups, 0);
  EXPECT_EQ(c.retention.min_full_backups, 1);
  EXPECT_TRUE(c.repository.verify_tls);
}

TEST(Config, ParsesEveryKindOfValue) {
  Config c = parse_config(R"(
[repository]
type = "s3"
bucket = "b"
verify_tls = false
[compression]
method = "none"
level = 7
[backup]
bundle_size = "128MiB"
[retention]
window = "30d"
)", "t.toml", false);
  EXPECT_EQ(c.repository.type, "s3");
  EXPECT_FALSE(c.repository.verify_tls);
  EXPECT_EQ(c.compression.method, Compression::None);
  EXPECT_EQ(c.compression.level, 7);
  EXPECT_EQ(c.backup.bundle_size, 128ull << 20);
  EXPECT_EQ(c.retention.window, "30d");
}

TEST(Config, UnknownKeyNamesKeyAndLine) {
  std::string msg = config_error("[repository]\npath = \"/x\"\npaht = \"/y\"\n");
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("paht"), std::string::npos) << msg;
}

TEST(Config, UnknownSectionIsAnError) {
  std::string msg = config_error("[compresion]\nlevel = 3\n");
  EXPECT_NE(msg.find("[compresion]"), std::string::npos) << msg;
}

TEST(Config, BadValuesNameTheKey) {
  EXPECT_NE(config_error("[compression]\nlevel = 99\n").find("level"), std::string::npos);
  EXPECT_NE(config_error("[compression]\nlevel = \"high\"\n").find("level"), std::string::npos);
  EXPECT_NE(config_error("[compression]\nmethod = \"lz4\"\n").find("method"), std::string::npos);
  EXPECT_NE(config_error("[fetch]\non_error = \"ignore\"\n").find("on_error"), std::string::npos);
  EXPECT_NE(config_error("[retention]\nwindow = \"30x\"\n").find("window"), std::string::npos);
  EXPECT_NE(config_error("[retention]\nfull_backups = -1\n").find("full_backups"), std::string::npos);
  EXPECT_NE(config_error("[backup]\nbundle_size = \"12 parsecs\"\n").find("bundle_size"), std::string::npos);
  EXPECT_NE(config_error("[repository]\nverify_tls = \"maybe\"\n").find("verify_tls"), std::string::npos);
}

TEST(Config, SyntaxErrorNamesLine) {
  std::string msg = config_error("[repository]\npath = \n");
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
}

TEST(Config, EncryptionNeedsAKey) {
  EXPECT_NE(config_error("[encryption]\nmethod = \"aes-256-gcm\"\n").find("key_file"), std::string::npos);
  EXPECT_NE(config_error("[encryption]\nkey_file = \"/a\"\npassphrase_file = \"/b\"\n").find("not both"),
            std::string::npos);
}

TEST(Config, OverridesBeatEnvironmentBeatsFile) {
  ::setenv("AWS_REGION", "eu-west-3", 1);
  ::setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
  Config c = parse_config("[repository]\nregion = \"us-west-2\"\naccess_key_id = \"AKIAFILE\"\n", "t", true,
                          {{"repository.access_key_id", "AKIAFLAG"}});
  EXPECT_EQ(c.repository.region, "eu-west-3");
  EXPECT_EQ(c.repository.access_key_id, "AKIAFLAG");
  ::unsetenv("AWS_REGION");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  EXPECT_NE(config_error("", {{"compression.level", "x"}}).find("option compression.level"), std::string::npos);
  EXPECT_NE(config_error("", {{"nosuch.key", "1"}}).find("unknown key"), std::string::npos);
}

TEST(Config, CompressionThreadsAutoOrACount) {
  EXPECT_EQ(parse_config("[compression]\nthreads = \"auto\"\n", "t", false).compression.threads,
            Config::CompressionCfg::kAutoThreads);
  EXPECT_EQ(parse_config("[compression]\nthreads = 0\n", "t", false).compression.threads, 0);
  EXPECT_EQ(parse_config("", "t", false, {{"compression.threads", "4"}}).compression.threads, 4);
  EXPECT_EQ(parse_config("", "t", false, {{"compression.threads", "auto"}}).compression.threads,
            Config::CompressionCfg::kAutoThreads);
  for (const char* bad : {"threads = -1", "threads = 65", "threads = \"many\"", "threads = true"}) {
    std::string msg = config_error(std::string("[compression]\n") + bad + "\n");
    EXPECT_NE(msg.find("line 2: threads must be"), std::string::npos) << bad << ": " << msg;
  }
  EXPECT_NE(config_error("", {{"compression.threads", "x"}}).find("\"auto\" or an integer"), std::string::npos);
}

TEST(Config, MissingExplicitFileIsAnError) {
  try {
    load_config(std::string("/nonexistent/pgvault.toml"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/pgvault.toml"), std::string::npos);
  }
}

TEST(Config, SizesAndDurations) {
  EXPECT_EQ(parse_size("64MiB", "x"), 64ull << 20);
  EXPECT_EQ(parse_size("4096", "x"), 4096u);
  EXPECT_EQ(parse_size("1GiB", "x"), 1ull << 30);
  EXPECT_THROW(parse_size("MiB", "x"), Error);
  EXPECT_THROW(parse_size("-5MiB", "x"), Error);
  EXPECT_EQ(parse_duration("30d", "x"), 30 * 86400);
  EXPECT_EQ(parse_duration("2w", "x"), 14 * 86400);
  EXPECT_EQ(parse_duration("12h", "x"), 12 * 3600);
  EXPECT_THROW(parse_duration("30", "x"), Error);
  EXPECT_THROW(parse_duration("d", "x"), Error);
}

TEST(Config, ShippedExampleParsesAndDocumentsEveryKey) {
  std::ifstream in(std::string(PGVAULT_TEST_DATA) + "/../../../conf/pgvault.toml");
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  Config c = parse_config(text, "conf/pgvault.toml", false);
  EXPECT_EQ(c.repository.path, "/var/lib/pgvault/repo");
  for (const auto& key : config_keys()) {
    std::string section = "[" + key.substr(0, key.find('.')) + "]";
    std::string name = key.substr(key.find('.') + 1);
    EXPECT_NE(text.find(section), std::string::npos) << section;
    EXPECT_TRUE(text.find("\n" + name + " =") != std::string::npos ||
                text.find("# " + name + " =") != std::string::npos)
        << key << " is not documented in conf/pgvault.toml";
  }
}
