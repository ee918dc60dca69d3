// Logging (base/log.h): quiet by default when stderr is not a terminal (cron), a chosen level wins, and
// [log] file gets info lines whatever the stderr level.
#include <gtest/gtest.h>
#include <spdlog/sinks/sink.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/base/log.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::TempDir;

TEST(Log, QuietWithoutTerminalUnlessALevelIsChosen) {
  ::unsetenv("PGVAULT_LOG_LEVEL");
  init_logging("log-test");
  bool tty = isatty(STDERR_FILENO) != 0;
  EXPECT_EQ(spdlog::default_logger()->sinks()[0]->should_log(spdlog::level::info), tty);
  EXPECT_TRUE(spdlog::default_logger()->sinks()[0]->should_log(spdlog::level::warn));
  set_log_level("");  // unset in the config: unchanged
  EXPECT_EQ(spdlog::default_logger()->sinks()[0]->should_log(spdlog::level::info), tty);
  set_log_level("info");
  EXPECT_TRUE(spdlog::default_logger()->sinks()[0]->should_log(spdlog::level::info));
  ::setenv("PGVAULT_LOG_LEVEL", "error", 1);
  init_logging("log-test");
  EXPECT_FALSE(spdlog::default_logger()->sinks()[0]->should_log(spdlog::level::warn));
  ::unsetenv("PGVAULT_LOG_LEVEL");
}

TEST(Log, FileGetsInfoLinesEvenWhenStderrIsQuiet) {
  TempDir t;
  init_logging("log-test");
  set_log_level("warning");
  add_log_file(t / "pgvault.log", "log.file");
  spdlog::info("an info line");
  spdlog::debug("a debug line");
  spdlog::default_logger()->flush();
  std::ifstream in(t / "pgvault.log");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("log-test["), std::string::npos);
  EXPECT_NE(ss.str().find("info: an info line"), std::string::npos);
  EXPECT_EQ(ss.str().find("a debug line"), std::string::npos);
  EXPECT_FALSE(spdlog::default_logger()->sinks()[0]->should_log(spdlog::level::info));
  init_logging("log-test");
  EXPECT_THROW_KIND(add_log_file("/proc/pgvault-test/x.log", "log.file"), ErrorKind::Config);  // not creatable
}

TEST(Log, EveryRecordIsOneLine) {
  TempDir t;
  init_logging("log-test");
  add_log_file(t / "pgvault.log", "log.file");
  spdlog::error("restore point \"a\nb\" was never created\r\t{}", std::string("\x01\x7f\\ok", 5));
  spdlog::default_logger()->flush();
  std::ifstream in(t / "pgvault.log");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;  // only the record's own end
  EXPECT_NE(text.find("error: restore point \"a\\nb\" was never created\\r\\t\\x01\\x7f\\ok"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace pgvault
