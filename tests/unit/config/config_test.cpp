#include "common/config/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "common/base/errors.h"
#include "config/config_error.h"
#include "common/retention/retention.h"

using namespace pgvault;
using pgvault::testing_config::config_error;

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
access_key_id = "a"
secret_access_key = "s"
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
  // 0 s of retries would give up before the first request (the S3 layer refuses it with a vaguer error).
  EXPECT_NE(config_error("[repository]\nretry_time = 0\n").find("retry_time"), std::string::npos);
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

// The AWS variables of the process, cleared for the test and restored after it.
class AwsEnv {
 public:
  AwsEnv() {
    for (const char* n : kNames) {
      if (const char* v = std::getenv(n)) saved_[n] = v;
      ::unsetenv(n);
    }
  }
  ~AwsEnv() {
    for (const char* n : kNames) ::unsetenv(n);
    for (const auto& [n, v] : saved_) ::setenv(n.c_str(), v.c_str(), 1);
  }
  void set(const char* name, const char* value) { ::setenv(name, value, 1); }

 private:
  static constexpr const char* kNames[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                           "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"};
  std::map<std::string, std::string> saved_;
};

const char* const kS3File = R"([repository]
type = "s3"
bucket = "b"
region = "us-west-2"
endpoint = "https://file.example:9000"
access_key_id = "AKIAFILE"
secret_access_key = "file-secret"
)";

TEST(Config, FlagsBeatTheFileWhichBeatsAmbientAwsVariables) {
  AwsEnv env;
  env.set("AWS_REGION", "eu-west-3");
  env.set("AWS_ACCESS_KEY_ID", "AKIAENV");
  Config c = parse_config("[repository]\nregion = \"us-west-2\"\naccess_key_id = \"AKIAFILE\"\n", "t", true,
                          {{"repository.access_key_id", "AKIAFLAG"}});
  EXPECT_EQ(c.repository.region, "us-west-2");
  EXPECT_EQ(c.repository.access_key_id, "AKIAFLAG");
  EXPECT_EQ(c.where("repository.access_key_id"), "option repository.access_key_id");
  EXPECT_EQ(c.where("repository.region"), "t line 2");
  EXPECT_NE(config_error("", {{"compression.level", "x"}}).find("option compression.level"), std::string::npos);
  EXPECT_NE(config_error("", {{"nosuch.key", "1"}}).find("unknown key"), std::string::npos);
}

TEST(Config, AmbientAwsVariablesDoNotOverrideTheFile) {
  AwsEnv env;
  env.set("AWS_ENDPOINT_URL", "http://stray.example:8080");
  env.set("AWS_REGION", "eu-west-3");
  env.set("AWS_DEFAULT_REGION", "ap-south-1");
  env.set("AWS_ACCESS_KEY_ID", "AKIAENV");
  env.set("AWS_SECRET_ACCESS_KEY", "env-secret");
  Config c = parse_config(kS3File, "t", true);
  EXPECT_EQ(c.repository.endpoint, "https://file.example:9000");
  EXPECT_EQ(c.repository.region, "us-west-2");
  EXPECT_EQ(c.repository.access_key_id, "AKIAFILE");
  EXPECT_EQ(c.repository.secret_access_key, "file-secret");
}

TEST(Config, AmbientAwsCredentialsCountAsOneSetting) {
  AwsEnv env;
  env.set("AWS_SESSION_TOKEN", "stray-token");
  env.set("AWS_SECRET_ACCESS_KEY", "env-secret");
  // The file's key pair must not be joined by another role's session token (or secret).
  Config c = parse_config("[repository]\ntype = \"s3\"\nbucket = \"b\"\naccess_key_id = \"AKIAFILE\"\n"
                          "secret_access_key = \"file-secret\"\n", "t", true);
  EXPECT_EQ(c.repository.session_token, "");
  // Likewise with only the access key in the file: the environment's secret does not complete it.
  std::string msg;
  try {
    parse_config("[repository]\ntype = \"s3\"\nbucket = \"b\"\naccess_key_id = \"AKIAFILE\"\n", "t", true);
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("t line 2: [repository] type \"s3\" needs secret_access_key"), std::string::npos) << msg;
  // A flag for one credential keeps the ambient ones out too.
  c = parse_config("[repository]\ntype = \"s3\"\nbucket = \"b\"\n", "t", true,
                   {{"repository.access_key_id", "AKIAFLAG"}, {"repository.secret_access_key", "flag-secret"}});
  EXPECT_EQ(c.repository.secret_access_key, "flag-secret");
  EXPECT_EQ(c.repository.session_token, "");
}

TEST(Config, AmbientAwsVariablesFillWhatTheFileLeavesUnset) {
  AwsEnv env;
  env.set("AWS_ENDPOINT_URL", "http://env.example:8080");
  env.set("AWS_DEFAULT_REGION", "ap-south-1");
  env.set("AWS_REGION", "eu-west-3");  // beats AWS_DEFAULT_REGION
  env.set("AWS_ACCESS_KEY_ID", "AKIAENV");
  env.set("AWS_SECRET_ACCESS_KEY", "env-secret");
  env.set("AWS_SESSION_TOKEN", "env-token");
  Config c = parse_config("[repository]\ntype = \"s3\"\nbucket = \"b\"\n", "t", true);
  EXPECT_EQ(c.repository.endpoint, "http://env.example:8080");
  EXPECT_EQ(c.repository.region, "eu-west-3");
  EXPECT_EQ(c.repository.access_key_id, "AKIAENV");
  EXPECT_EQ(c.repository.secret_access_key, "env-secret");
  EXPECT_EQ(c.repository.session_token, "env-token");
  EXPECT_EQ(c.where("repository.endpoint"), "environment AWS_ENDPOINT_URL");
}

// Checks across several keys name the line of the key at fault (the fuzzed configs of issue 10).
TEST(Config, CrossKeyChecksNameTheLineOfTheKeyAtFault) {
  struct Case {
    const char* toml;
    const char* needle;
  };
  const Case cases[] = {
      {"[repository]\ntype = \"fs\"\npath = \"relative/repo\"\n", "test.toml line 3: [repository] path must be an absolute path"},
      {"[repository]\n\npath = \"\"\n", "test.toml line 3: [repository] path must be set"},
      {"# s3\n[repository]\ntype = \"s3\"\n", "test.toml line 3: [repository] bucket must be set"},
      {"[repository]\ntype = \"s3\"\nbucket = \"\"\n", "test.toml line 3: [repository] bucket must be set"},
      {"[repository]\ntype = \"s3\"\nbucket = \"b\"\n", "test.toml line 2: [repository] type \"s3\" needs access_key_id"},
      {"[repository]\ntype = \"s3\"\nbucket = \"b\"\naccess_key_id = \"\"\nsecret_access_key = \"s\"\n",
       "test.toml line 4: [repository] type \"s3\" needs access_key_id"},
      {"[repository]\ntype = \"s3\"\nbucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"\nregion = \"\"\n",
       "test.toml line 6: [repository] region must not be empty"},
      {"[repository]\nendpoint = \"s3.example.com\"\n", "test.toml line 2: endpoint must be a URL"},
      {"[repository]\nendpoint = \"https://s3.example.com/bucket\"\n", "test.toml line 2: endpoint must be a URL"},
      {"[repository]\nendpoint = \"http://s3.example.com:port\"\n", "test.toml line 2: endpoint must be a URL"},
      {"[compression]\nlevel = 3\n[encryption]\n\nmethod = \"aes-256-gcm\"\n",
       "test.toml line 5: [encryption] method \"aes-256-gcm\" needs key_file"},
      {"[encryption]\nkey_file = \"/a\"\npassphrase_file = \"/b\"\n",
       "test.toml line 3: [encryption] set key_file or passphrase_file, not both (key_file: test.toml line 2)"},
  };
  for (const auto& c : cases) {
    std::string msg = config_error(c.toml);
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.toml << "\n-> " << msg;
  }
  // A flag at fault is named as the flag.
  EXPECT_NE(config_error("", {{"repository.path", "rel"}}).find("option repository.path: [repository] path must be an absolute"),
            std::string::npos);
  // Good endpoints pass.
  for (const char* e : {"https://s3.example.com", "http://127.0.0.1:9000/", "https://[::1]:443"}) {
    EXPECT_EQ(parse_config(std::string("[repository]\nendpoint = \"") + e + "\"\n", "t", false).repository.endpoint, e);
  }
}

TEST(Config, RetentionPolicyErrorsNameTheLine) {
  auto policy_error = [](const std::string& toml) -> std::string {
    try {
      retention_policy(parse_config(toml, "test.toml", false));
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no error for:\n" << toml;
    return "";
  };
  EXPECT_NE(policy_error("[log]\nlevel = \"info\"\n[retention]\nfull_backups = 0\n").find("test.toml line 4: [retention] no rule"),
            std::string::npos);
  EXPECT_NE(policy_error("[retention]\nfull_backups = 1\nincomplete_grace = \"30m\"\n")
                .find("test.toml line 3: [retention] incomplete_grace must be at least 1h"),
            std::string::npos);
  // No [retention] section at all: the file is named.
  EXPECT_NE(policy_error("").find("test.toml: [retention] no rule"), std::string::npos);
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
  EXPECT_EQ(parse_size("16777215TiB", "x"), 16777215ull << 40);
  EXPECT_THROW(parse_size("16777216TiB", "x"), Error);  // 2^64 bytes: the product wrapped to 0
  EXPECT_THROW(parse_size("999999999999999GiB", "x"), Error);
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
