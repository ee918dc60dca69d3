#include "common/base/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "common/base/errors.h"

namespace pgvault {

namespace {

// %* is the message with its control characters escaped (below), so a record is always one line.
constexpr const char* kPattern = "%Y-%m-%d %H:%M:%S.%e %n[%P] %l: %*";

// The message, with every control character (a newline in a restore point name, a file name or a
// server's answer) written as \n, \r, \t or \xNN: PostgreSQL's log, cron's mail and the tests read
// one record per line.
class OneLineMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : msg.payload) {
      const auto b = static_cast<unsigned char>(c);
      if (b >= 0x20 && b != 0x7f) {
        dest.push_back(c);
        continue;
      }
      dest.push_back('\\');
      switch (c) {
        case '\n': dest.push_back('n'); break;
        case '\r': dest.push_back('r'); break;
        case '\t': dest.push_back('t'); break;
        default:
          dest.push_back('x');
          dest.push_back(kHex[b >> 4]);
          dest.push_back(kHex[b & 15]);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<OneLineMessage>(); }
};

std::unique_ptr<spdlog::formatter> line_formatter() {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<OneLineMessage>('*').set_pattern(kPattern);
  return f;
}

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
  logger->set_formatter(line_formatter());
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
  s.file_sink->set_formatter(line_formatter());
  spdlog::default_logger()->sinks().push_back(s.file_sink);
  apply_levels();
}

}  // namespace pgvault
