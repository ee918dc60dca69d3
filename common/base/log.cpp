#include "common/base/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/base/errors.h"

namespace pgvault {

namespace {

constexpr const char* kPattern = "%Y-%m-%d %H:%M:%S.%e %n[%P] %l: %v";

struct Sinks {
  spdlog::sink_ptr stderr_sink;
  spdlog::sink_ptr file_sink;
  spdlog::level::level_enum level = spdlog::level::info;
};

Sinks& sinks() {
  static Sinks s;
  return s;
}

// stderr at the level; the file at the level or info; the logger at the more verbose of the two.
void apply_levels() {
  Sinks& s = sinks();
  auto logger_level = s.level;
  if (s.stderr_sink) s.stderr_sink->set_level(s.level);
  if (s.file_sink) {
    auto file_level = std::min(s.level, spdlog::level::info);
    s.file_sink->set_level(file_level);
    logger_level = std::min(logger_level, file_level);
  }
  spdlog::set_level(logger_level);
}

}  // namespace

void init_logging(std::string_view tool) {
  // Unbuffered stderr sink without colours: the output goes to PostgreSQL's log, not a terminal.
  Sinks& s = sinks();
  s.file_sink.reset();
  s.stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(std::string(tool), s.stderr_sink);
  logger->set_pattern(kPattern);
  spdlog::set_default_logger(logger);
  s.level = isatty(STDERR_FILENO) != 0 ? spdlog::level::info : spdlog::level::warn;
  apply_levels();
  if (const char* lvl = std::getenv("PGVAULT_LOG_LEVEL"); lvl && *lvl) set_log_level(lvl);
}

void set_log_level(const std::string& level) {
  Sinks& s = sinks();
  if (level == "debug") s.level = spdlog::level::debug;
  else if (level == "info") s.level = spdlog::level::info;
  else if (level == "warning" || level == "warn") s.level = spdlog::level::warn;
  else if (level == "error") s.level = spdlog::level::err;
  else return;
  apply_levels();
}

void add_log_file(const std::string& path, const std::string& what) {
  Sinks& s = sinks();
  if (s.file_sink) return;  // once per run
  try {
    s.file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
  } catch (const spdlog::spdlog_ex& e) {
    throw Error(ErrorKind::Config, what + ": cannot open log file " + path + ": " + e.what());
  }
  s.file_sink->set_pattern(kPattern);
  spdlog::default_logger()->sinks().push_back(s.file_sink);
  apply_levels();
}

}  // namespace pgvault
