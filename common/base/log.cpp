#include "common/base/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>

namespace pgvault {

void init_logging(std::string_view tool) {
  // Unbuffered stderr sink without colours: the output goes to PostgreSQL's log, not a terminal.
  auto logger = spdlog::stderr_logger_mt(std::string(tool));
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %n[%P] %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
  if (const char* lvl = std::getenv("PGVAULT_LOG_LEVEL"); lvl && *lvl) set_log_level(lvl);
}

void set_log_level(const std::string& level) {
  if (level == "debug") spdlog::set_level(spdlog::level::debug);
  else if (level == "info") spdlog::set_level(spdlog::level::info);
  else if (level == "warning" || level == "warn") spdlog::set_level(spdlog::level::warn);
  else if (level == "error") spdlog::set_level(spdlog::level::err);
}

}  // namespace pgvault
