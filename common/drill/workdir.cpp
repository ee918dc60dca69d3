// The drill's work directory, the server's user, the signal flag and the server binary (server.h).
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "common/base/errors.h"
#include "common/drill/drill.h"
#include "common/drill/server.h"

namespace fs = std::filesystem;

namespace pgvault {

namespace {
std::atomic<int> g_signal{0};
void on_signal(int signo) { g_signal.store(signo); }
}  // namespace

void install_drill_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

namespace drill_detail {

void check_interrupt() {
  int s = g_signal.load();
  if (s != 0) throw Error(ErrorKind::Interrupted, s == SIGINT ? "interrupted by SIGINT" : "interrupted by SIGTERM");
}

ServerUser server_user() {
  ServerUser u;
  u.uid = geteuid();
  u.gid = getegid();
  if (u.uid == 0) {
    const passwd* pw = getpwnam("postgres");
    if (!pw) throw Error(ErrorKind::Config, "running as root, the drill starts the server as user postgres, which does not exist");
    u.switch_user = true;
    u.uid = pw->pw_uid;
    u.gid = pw->pw_gid;
    u.name = pw->pw_name;
  } else if (const passwd* pw = getpwuid(u.uid)) {
    u.name = pw->pw_name;
  }
  return u;
}

namespace {

// The server's socket goes into the work directory, which must therefore suit PostgreSQL's
// unix_socket_directories and libpq's host (both comma-separated lists, libpq's without any quoting)
// and the kernel's limit on a socket path (108 bytes with its NUL, ".s.PGSQL.<port>" included).
void check_socket_dir(const std::string& dir) {
  constexpr std::size_t kSocketPathMax = sizeof(sockaddr_un::sun_path) - 1;
  constexpr std::size_t kSocketName = sizeof("/.s.PGSQL.65535") - 1;
  if (dir.find(',') != std::string::npos) {
    throw Error(ErrorKind::InvalidInput, "work directory " + dir +
                                             " contains a comma: the server's socket goes there, and PostgreSQL and "
                                             "libpq read a socket directory as a comma-separated list");
  }
  if (dir.size() + kSocketName > kSocketPathMax) {
    throw Error(ErrorKind::InvalidInput, "work directory " + dir + " is " + std::to_string(dir.size()) +
                                             " bytes long: the server's socket goes there, so it may have at most " +
                                             std::to_string(kSocketPathMax - kSocketName));
  }
}

std::string new_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/var/tmp";
  std::string tmpl = base + "/pgvault-drill-XXXXXX";
  check_socket_dir(tmpl);
  if (!mkdtemp(tmpl.data())) throw errno_error("create work directory " + tmpl, errno);
  return tmpl;
}

}  // namespace

WorkDir::WorkDir(const std::string& configured, const ServerUser& user) : user_(user) {
  std::error_code ec;
  if (configured.empty()) {
    path_ = new_temp_dir();
    created_ = true;
  } else {
    path_ = fs::absolute(configured).lexically_normal().string();
    check_socket_dir(path_);
    if (fs::exists(path_, ec)) {
      if (!fs::is_directory(path_, ec) || !fs::is_empty(path_, ec)) {
        throw Error(ErrorKind::InvalidInput, "work directory " + path_ + " is not an empty directory");
      }
    } else {
      if (mkdir(path_.c_str(), 0700) != 0) throw errno_error("create work directory " + path_, errno);
      created_ = true;
    }
  }
  if (chmod(path_.c_str(), 0700) != 0 || (user_.switch_user && chown(path_.c_str(), user_.uid, user_.gid) != 0)) {
    int err = errno;
    remove();
    throw errno_error("set the mode and owner of work directory " + path_, err);
  }
}

WorkDir::~WorkDir() { remove(); }

void WorkDir::remove() noexcept {
  std::error_code ec;
  if (created_) {
    fs::remove_all(path_, ec);
  } else {
    for (const auto& e : fs::directory_iterator(path_, ec)) fs::remove_all(e.path(), ec);
  }
  if (ec) spdlog::warn("could not remove work directory {}: {}", path_, ec.message());
}

void WorkDir::hand_over() const {
  if (!user_.switch_user) return;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (lchown(it->path().c_str(), user_.uid, user_.gid) != 0) throw errno_error("chown " + it->path().string(), errno);
  }
  if (ec) throw Error(ErrorKind::Io, "walk work directory " + path_ + ": " + ec.message());
}

std::string postgres_binary(const std::string& bin_dir, int pg_version) {
  std::string dir = bin_dir.empty() ? "/usr/lib/postgresql/" + std::to_string(pg_version) + "/bin" : bin_dir;
  std::string bin = dir + "/postgres";
  if (access(bin.c_str(), X_OK) != 0) {
    throw Error(ErrorKind::Config, "no PostgreSQL server program " + bin + " for the backup's PostgreSQL " +
                                       std::to_string(pg_version) + " (install it or set [drill] bin_dir)");
  }
  return bin;
}

int free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) throw errno_error("socket", errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int rc = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (rc == 0) rc = getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  int err = errno;
  close(s);
  if (rc != 0) throw errno_error("find a free port on 127.0.0.1", err);
  return ntohs(a.sin_port);
}

}  // namespace drill_detail
}  // namespace pgvault
