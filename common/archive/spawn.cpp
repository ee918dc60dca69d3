// spawn_prefetch_worker and spawn_push_worker (archive.h): the one place that starts a process.
#include <fcntl.h>
#include <spawn.h>

#include <string>
#include <vector>

#include "common/archive/archive.h"

extern char** environ;

namespace pgvault {

namespace {

// This process's environment without either worker variable, then `variable`=<value>.
std::vector<std::string> worker_environment(const char* variable, const std::string& value) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    if (entry.rfind(std::string(kPrefetchWorkerEnv) + "=", 0) != 0 &&
        entry.rfind(std::string(kPushWorkerEnv) + "=", 0) != 0) {
      env.push_back(entry);
    }
  }
  env.push_back(std::string(variable) + "=" + value);
  return env;
}

// Re-executes this program, detached (own session, no stdin/stdout), with `variable`=<value> in its
// environment. False when no process could be started.
bool spawn_worker(int argc, char** argv, const char* variable, const std::string& value) {
  std::vector<std::string> env_store = worker_environment(variable, value);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc == 0;
}

}  // namespace

void spawn_prefetch_worker(int argc, char** argv, const std::string& name) {
  spawn_worker(argc, argv, kPrefetchWorkerEnv, name);  // best effort: the call fetched its own file
}

bool spawn_push_worker(int argc, char** argv, const std::string& path) {
  return spawn_worker(argc, argv, kPushWorkerEnv, path);
}

}  // namespace pgvault
