// Notifications (notify.h): the event, and running the command.
#include "common/cli/notify.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <optional>
#include <vector>

#include "common/base/time.h"

extern char** environ;

namespace pgvault {

namespace {

constexpr std::size_t kMaxOutput = 64 * 1024;

struct Remembered {
  std::optional<Config::Notify> notify;
  std::string repository;
  std::string backup;
};

Remembered& remembered() {
  static Remembered r;
  return r;
}

std::string location_of(const Config::Repository& r) {
  if (r.type == "s3") return "s3://" + r.bucket + (r.prefix.empty() ? "" : "/" + r.prefix);
  return r.path;
}

std::string host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

// This environment plus the PGVAULT_* variables of the event (built before fork: execve takes it as is).
std::vector<std::string> notifier_environment(const NotifyEvent& ev) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.push_back("PGVAULT_EVENT=" + ev.event);
  env.push_back("PGVAULT_TOOL=" + ev.tool);
  env.push_back("PGVAULT_EXIT_CODE=" + std::to_string(ev.exit_code));
  env.push_back("PGVAULT_MESSAGE=" + ev.message);
  return env;
}

// The child: own process group (so a timeout kills what it started too), stdin from `in`, stdout and
// stderr into `out`. Only async-signal-safe calls between fork and exec.
[[noreturn]] void exec_child(const std::string& command, int in, int out, char* const* envp) {
  ::setpgid(0, 0);
  ::dup2(in, STDIN_FILENO);
  ::dup2(out, STDOUT_FILENO);
  ::dup2(out, STDERR_FILENO);
  const char* argv[] = {"sh", "-c", command.c_str(), nullptr};
  ::execve("/bin/sh", const_cast<char**>(argv), envp);
  ::_exit(127);
}

// Reads what the child writes until it exits or the deadline passes; returns its wait status, or
// nullopt on timeout (then it has been killed with its process group).
std::optional<int> collect(pid_t pid, int out, std::string& output, std::chrono::steady_clock::time_point deadline) {
  ::fcntl(out, F_SETFL, O_NONBLOCK);
  char buf[4096];
  for (;;) {
    int status = 0;
    bool exited = ::waitpid(pid, &status, WNOHANG) == pid;
    ssize_t n;
    while ((n = ::read(out, buf, sizeof buf)) > 0) {
      if (output.size() < kMaxOutput) output.append(buf, static_cast<std::size_t>(n));
    }
    if (exited) return status;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return std::nullopt;
    }
    pollfd p{out, POLLIN, 0};
    ::poll(&p, 1, 50);
  }
}

void log_output(const std::string& output, bool failed) {
  std::size_t pos = 0;
  while (pos < output.size()) {
    std::size_t nl = output.find('\n', pos);
    std::string line = output.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? output.size() : nl + 1;
    if (line.empty()) continue;
    if (failed) spdlog::warn("notify: {}", line);
    else spdlog::info("notify: {}", line);
  }
}

std::string status_problem(std::optional<int> status, std::int64_t timeout) {
  if (!status) return "did not finish within " + std::to_string(timeout) + "s (killed)";
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) return "";
  if (WIFEXITED(*status)) return "exited with code " + std::to_string(WEXITSTATUS(*status));
  return "was killed by signal " + std::to_string(WTERMSIG(*status));
}

}  // namespace

std::string notify_event_json(const NotifyEvent& ev) {
  nlohmann::json j = {{"tool", ev.tool},           {"event", ev.event}, {"exit_code", ev.exit_code},
                      {"error_kind", ev.error_kind}, {"message", ev.message}, {"repository", ev.repository},
                      {"backup", ev.backup},       {"host", ev.host},   {"pid", ev.pid},
                      {"time", ev.time}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void notify_remember_config(const Config& config) {
  Remembered& r = remembered();
  r.notify = config.notify;
  r.repository = config.repository.name + " (" + location_of(config.repository) + ")";
}

void notify_set_backup(const std::string& label) { remembered().backup = label; }

std::string run_notifier(const std::string& command, const NotifyEvent& event, std::int64_t timeout) {
  std::vector<std::string> env = notifier_environment(event);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return "cannot create a pipe";
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return "cannot create a pipe";
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
  pid_t pid = ::fork();
  if (pid == 0) exec_child(command, in[0], out[1], envp.data());
  ::close(in[0]);
  ::close(out[1]);
  std::optional<int> status;
  if (pid > 0) {
    std::string json = notify_event_json(event);
    ::signal(SIGPIPE, SIG_IGN);  // a notifier that does not read its stdin must not kill us
    [[maybe_unused]] ssize_t w = ::write(in[1], json.data(), json.size());
  }
  ::close(in[1]);
  if (pid < 0) {
    ::close(out[0]);
    return "cannot start /bin/sh";
  }
  std::string output;
  status = collect(pid, out[0], output, deadline);
  ::close(out[0]);
  std::string problem = status_problem(status, timeout);
  log_output(output, !problem.empty());
  return problem;
}

void notify_run_end(const std::string& tool, int exit_code, const std::string& error_kind, const std::string& message) {
  try {
    const Remembered& r = remembered();
    if (!r.notify || r.notify->command.empty()) return;
    if (exit_code == 0 && !r.notify->always) return;
    NotifyEvent ev{tool, exit_code == 0 ? "success" : "failure", exit_code, error_kind, message, r.repository,
                   r.backup, host_name(), static_cast<long>(::getpid()), format_utc(std::time(nullptr))};
    std::string problem = run_notifier(r.notify->command, ev, r.notify->timeout);
    if (!problem.empty()) spdlog::warn("[notify] command {}; the exit code stays {}", problem, exit_code);
  } catch (const std::exception& e) {
    spdlog::warn("[notify] failed: {}", e.what());
  }
}

}  // namespace pgvault
