// Inside the drill library: the work directory and the PostgreSQL server the drill starts (drill.h).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

namespace pgvault::drill_detail {

// Who runs the server: this process's user, or (as root) the `postgres` user.
struct ServerUser {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;  // the role to connect as: the server's OS user name
};
ServerUser server_user();

// Throws Interrupted once SIGINT or SIGTERM arrived (install_drill_signal_handlers).
void check_interrupt();

// The drill's directory: `configured` (absent: created; present: must be empty), else a new
// pgvault-drill-XXXXXX under $TMPDIR or /var/tmp. Mode 0700, owned by the server's user. Removed (a
// configured one that existed: emptied) on destruction.
class WorkDir {
 public:
  WorkDir(const std::string& configured, const ServerUser& user);
  ~WorkDir();
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::string& path() const { return path_; }
  std::string data() const { return path_ + "/data"; }
  // Gives everything below the directory to the server's user (after a restore as root).
  void hand_over() const;

 private:
  void remove() noexcept;
  std::string path_;
  bool created_ = false;
  ServerUser user_;
};

// The postgres binary for a backup of PostgreSQL `pg_version` (the major: 15): bin_dir, else /usr/lib/postgresql/15/bin.
// Throws Config naming the path when it is not executable.
std::string postgres_binary(const std::string& bin_dir, int pg_version);
// A TCP port nothing listens on at the moment (127.0.0.1).
int free_port();

// A `postgres` process on a data directory, started by start(), stopped by stop() or the destructor.
class Server {
 public:
  Server(std::string binary, const WorkDir& dir, int port, ServerUser user);
  ~Server() { stop(); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  void start();
  // Waits until pg_is_in_recovery() is false. Throws Transient naming the cause (the server exited: its
  // log's last line; the timeout passed) and Interrupted.
  void wait_recovery_end(int timeout_seconds);
  // SIGINT (fast), after 30 s SIGQUIT (immediate), after 10 s more SIGKILL; waits for the process.
  void stop() noexcept;
  std::map<std::string, std::string> conninfo(const std::string& database) const;

 private:
  bool exited(std::string& why);
  std::string last_log_line() const;
  std::string binary_;
  std::string dir_;
  std::string data_;
  int port_;
  ServerUser user_;
  pid_t pid_ = -1;
};

}  // namespace pgvault::drill_detail
