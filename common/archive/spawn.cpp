// spawn_prefetch_worker (archive.h): the one place that starts a process.
#include <fcntl.h>
#include <spawn.h>

#include <string>
#include <vector>

#include "common/archive/archive.h"

extern char** environ;

namespace pgvault {

namespace {

// This process's environment without kPrefetchWorkerEnv, then kPrefetchWorkerEnv=<name>.
std::vector<std::string> worker_environment(const std::string& name) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    if (std::string(*e).rfind(std::string(kPrefetchWorkerEnv) + "=", 0) != 0) env.emplace_back(*e);
  }
  env.push_back(std::string(kPrefetchWorkerEnv) + "=" + name);
  return env;
}

}  // namespace

// Re-executes this program, detached (own session, no stdin/stdout), as the prefetch worker.
void spawn_prefetch_worker(int argc, char** argv, const std::string& name) {
  std::vector<std::string> env_store = worker_environment(name);
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
  posix_spawn(&pid, "/proc/self/exe", &actions, &attr, args.data(), envp.data());  // best effort
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
}

}  // namespace pgvault
