// The WAL tools' counters and recorded_wal_call (wal_state.h). On wal-push's and wal-fetch's hot path:
// a few small-file system calls per repository, no fsync, never a thrown error.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <sstream>
#include <thread>

#include "common/base/fs.h"
#include "common/base/io.h"
#include "common/base/text.h"
#include "common/repo/local_state.h"
#include "common/repo/owed.h"
#include "common/repo/wal_state.h"

namespace pgvault {

namespace {

constexpr const char* kMagic = "pgvault-wal-counters 1";
constexpr std::size_t kMaxFile = 16 * 1024;
constexpr std::uint64_t kSweepEvery = 1024;
constexpr auto kLockPoll = std::chrono::microseconds(250);
// Given up after this long (and this count lost): set_wal_counters_lock_patience.
std::atomic<std::chrono::milliseconds::rep> lock_patience_ms{100};

std::string counters_path(const std::string& dir, WalTool tool) { return dir + "/" + wal_tool_name(tool) + ".counters"; }

bool known_kind(const std::string& name) {
  for (int k = 0; k <= static_cast<int>(ErrorKind::Internal); ++k) {
    if (kind_name(static_cast<ErrorKind>(k)) == name) return true;
  }
  return false;
}

std::uint64_t number(const std::string& text, const std::string& line) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) throw std::runtime_error("bad line \"" + line + "\"");
  return v;
}

// Throws (any exception) when `text` is not a counters file of `repository`.
WalCounters parse_counters(const std::string& text, const std::string& repository) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != kMagic) throw std::runtime_error("not a pgvault counters file");
  if (!std::getline(in, line) || line != "repository " + repository) throw std::runtime_error("written for another repository");
  WalCounters c;
  while (std::getline(in, line)) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) throw std::runtime_error("bad line \"" + line + "\"");
    const std::string key = line.substr(0, sp);
    std::uint64_t v = number(line.substr(sp + 1), line);
    if (key == "files") c.files = v;
    else if (key == "bytes") c.bytes = v;
    else if (key == "missing") c.missing = v;
    else if (key.rfind("failure.", 0) == 0 && known_kind(key.substr(8))) c.failures[key.substr(8)] = v;
  }
  return c;
}

std::string counters_text(const WalCounters& c, const std::string& repository) {
  std::string out = std::string(kMagic) + "\nrepository " + repository + "\nfiles " + std::to_string(c.files) +
                    "\nbytes " + std::to_string(c.bytes) + "\nmissing " + std::to_string(c.missing) + "\n";
  for (const auto& [kind, n] : c.failures) out += "failure." + kind + " " + std::to_string(n) + "\n";
  return out;
}

// The counters in `path`; zero when absent, damaged (a warning) or foreign (a warning).
WalCounters load_counters(const std::string& path, const std::string& repository, bool* found) {
  *found = false;
  try {
    WalCounters c = parse_counters(read_state_file(path, kMaxFile), repository);
    *found = true;
    return c;
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) spdlog::warn("ignoring the WAL counters {}: {}", path, e.what());
  } catch (const std::exception& e) {
    spdlog::warn("ignoring the WAL counters {}: {}", path, e.what());
  }
  return {};
}

Fd lock_counters(const std::string& dir, const std::string& path) {
  const std::string lock = path + ".lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ENOENT) {
    make_dirs(dir, 0700);
    fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  }
  if (fd < 0) throw errno_error("open " + lock, errno);
  Fd held(fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(lock_patience_ms.load());
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return held;
    if (errno != EWOULDBLOCK && errno != EINTR) throw errno_error("lock " + lock, errno);
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kLockPoll);
  }
  throw Error(ErrorKind::Conflict, lock + ": held by another process for too long");
}

void add_outcome(WalCounters& c, const WalOutcome& o) {
  if (o.failure) {
    ++c.failures[std::string(kind_name(*o.failure))];
  } else if (o.missing) {
    ++c.missing;
  } else {
    ++c.files;
    c.bytes += o.bytes;
  }
}

std::uint64_t size_of(const std::string& file) {
  struct stat st;
  return ::stat(file.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

}  // namespace

std::chrono::milliseconds set_wal_counters_lock_patience(std::chrono::milliseconds patience) {
  return std::chrono::milliseconds(lock_patience_ms.exchange(patience.count()));
}

const char* wal_tool_name(WalTool t) { return t == WalTool::Push ? "wal-push" : "wal-fetch"; }

void record_wal_outcome(const Config& config, WalTool tool, const WalOutcome& outcome) noexcept {
  try {
    const std::string dir = repository_state_dir(config, true);
    const std::string path = counters_path(dir, tool);
    Fd lock = lock_counters(dir, path);
    bool found = false;
    WalCounters c = load_counters(path, config.repository.name, &found);
    add_outcome(c, outcome);
    AtomicFileWriter w(path, /*no_replace=*/false, /*durable=*/false, 0600);
    w.write(as_bytes(counters_text(c, config.repository.name)));
    w.commit();
    // Temporary files of calls killed mid-write, now and then (bounded: the folder never fills up).
    if (!found || (c.files + c.missing) % kSweepEvery == 0) remove_stale_temp_files(dir);
  } catch (const std::exception& e) {
    spdlog::debug("{} counters of repository {} not recorded: {}", wal_tool_name(tool), config.repository.name, e.what());
  }
}

std::optional<WalCounters> read_wal_counters(const Config& config, WalTool tool) {
  bool found = false;
  WalCounters c = load_counters(counters_path(repository_state_dir(config, false), tool), config.repository.name, &found);
  if (!found) return std::nullopt;
  return c;
}

bool recorded_wal_call(const Config& config, WalTool tool, const std::string& file, const std::function<bool()>& call) {
  WalOutcome o;
  auto record = [&] {
    try {
      // (A configuration built in code may list no repository: then it is the one.)
      auto configs = config.repositories.empty() ? std::vector<Config>{config} : repository_configs(config);
      for (const Config& narrowed : configs) {
        bool owes = tool == WalTool::Push && !o.failure && !narrowed.repository.required &&
                    is_owed(narrowed, base_name(file));
        if (!owes) record_wal_outcome(narrowed, tool, o);
      }
    } catch (const std::exception& e) {
      spdlog::debug("{} counters not recorded: {}", wal_tool_name(tool), e.what());
    }
  };
  try {
    o.missing = !call();
  } catch (const Error& e) {
    o.failure = e.kind();
    record();
    throw;
  } catch (...) {
    o.failure = ErrorKind::Internal;
    record();
    throw;
  }
  if (!o.missing) o.bytes = size_of(file);
  record();
  return !o.missing;
}

}  // namespace pgvault
