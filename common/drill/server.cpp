// The PostgreSQL server of a drill (server.h): started with fork/exec, stopped by its PID.
#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/drill/server.h"
#include "common/pg/sql_conn.h"

namespace pgvault::drill_detail {

namespace {

using Clock = std::chrono::steady_clock;

void write_text(const std::string& path, const std::string& text) {
  AtomicFileWriter w(path, false, false, 0600);
  w.write(ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  w.commit();
}

// In the forked child: only async-signal-safe calls until exec.
[[noreturn]] void exec_server(const std::vector<char*>& argv, const char* log, const ServerUser& u) {
  setpgid(0, 0);  // a terminal's Ctrl-C reaches the drill, which stops the server itself
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  int null = open("/dev/null", O_RDONLY);
  if (fd < 0 || null < 0) _exit(127);
  dup2(null, 0);
  dup2(fd, 1);
  dup2(fd, 2);
  if (u.switch_user && (setgroups(0, nullptr) != 0 || setgid(u.gid) != 0 || setuid(u.uid) != 0)) _exit(126);
  execv(argv[0], argv.data());
  _exit(127);
}

}  // namespace

Server::Server(std::string binary, const WorkDir& dir, int port, ServerUser user)
    : binary_(std::move(binary)), dir_(dir.path()), data_(dir.data()), port_(port), user_(std::move(user)) {}

void Server::start() {
  // Local connections only, through the socket in the 0700 work directory: trust is safe there, and
  // the backup's own pg_hba.conf may name users or methods this host does not have.
  write_text(dir_ + "/drill_hba.conf", "local all all trust\n");
  // A Debian cluster keeps postgresql.conf in /etc: the data directory then has none.
  if (access((data_ + "/postgresql.conf").c_str(), F_OK) != 0) write_text(data_ + "/postgresql.conf", "");
  write_text(dir_ + "/server.log", "");
  if (user_.switch_user) {
    for (std::string p : {dir_ + "/drill_hba.conf", dir_ + "/server.log", data_ + "/postgresql.conf"}) {
      if (chown(p.c_str(), user_.uid, user_.gid) != 0) throw errno_error("chown " + p, errno);
    }
  }
  std::vector<std::string> args = {binary_, "-D", data_, "-c", "port=" + std::to_string(port_),
                                   "-c", "listen_addresses=", "-c", "unix_socket_directories=" + dir_,
                                   "-c", "archive_mode=off", "-c", "hba_file=" + dir_ + "/drill_hba.conf",
                                   "-c", "ssl=off", "-c", "logging_collector=off",
                                   "-c", "cluster_name=pgvault-drill"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string log = dir_ + "/server.log";
  pid_t pid = fork();
  if (pid < 0) throw errno_error("fork to start " + binary_, errno);
  if (pid == 0) exec_server(argv, log.c_str(), user_);
  pid_ = pid;
  spdlog::info("started {} (pid {}) on {} port {}", binary_, pid_, data_, port_);
}

std::map<std::string, std::string> Server::conninfo(const std::string& database) const {
  std::map<std::string, std::string> p = {{"host", dir_}, {"port", std::to_string(port_)},
                                          {"dbname", database}, {"connect_timeout", "10"}};
  if (!user_.name.empty()) p["user"] = user_.name;
  return p;
}

std::string Server::last_log_line() const {
  std::ifstream in(dir_ + "/server.log");
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last.empty() ? "(empty server log)" : last;
}

bool Server::exited(std::string& why) {
  if (pid_ < 0) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  why = WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                          : "signal " + std::to_string(WTERMSIG(status));
  return true;
}

void Server::wait_recovery_end(int timeout_seconds) {
  auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  std::string last_error = "no connection yet";
  for (;;) {
    check_interrupt();
    std::string why;
    if (exited(why)) {
      throw Error(ErrorKind::Transient, "the server exited (" + why + ") before recovery ended: " + last_log_line());
    }
    try {
      SqlConnection conn(conninfo("template1"));
      if (conn.value("SELECT pg_is_in_recovery()") == "f") return;
      last_error = "still in recovery";
    } catch (const Error& e) {
      last_error = e.what();
    }
    if (Clock::now() >= deadline) {
      throw Error(ErrorKind::Transient, "recovery did not end within " + std::to_string(timeout_seconds) +
                                            " s (" + last_error + "); server log: " + last_log_line());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void Server::stop() noexcept {
  const std::pair<int, int> steps[] = {{SIGINT, 30}, {SIGQUIT, 10}, {SIGKILL, 30}};
  for (const auto& [signo, seconds] : steps) {
    if (pid_ < 0) return;
    kill(pid_, signo);
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    std::string why;
    while (!exited(why) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (pid_ < 0) spdlog::info("server stopped ({})", why);
  }
  if (pid_ >= 0) spdlog::warn("server pid {} did not exit after SIGKILL", pid_);
}

}  // namespace pgvault::drill_detail
