// wal-push: archive_command = 'wal-push %p'. Exit codes: docs/EXIT-CODES.md.
#include <cstdlib>

#include "common/archive/archive.h"
#include "common/archive/multi_push.h"
#include "common/cli/cli.h"
#include "common/repo/wal_state.h"

int main(int argc, char** argv) {
  CLI::App app{"Archive one WAL file into the pgvault repositories (archive_command = 'wal-push %p').\n"
               "Exits 0 only once the file is durable in every repository marked required (default: all).\n"
               "A repository with required = false may lag: a failed push there records the file in its owed\n"
               "queue ([push] owed_dir) and later calls push it; past max_owed_segments or max_owed_age the\n"
               "call fails, naming the repository and the bound. With --repo NAME: that repository only.\n"
               "With [push] parallel > 1 and one repository, once the file is durable a detached worker pushes\n"
               "the other .ready files ahead (one per spool; it stops 1 s after the backlog is gone); later\n"
               "calls find their files recorded and return at once.",
               "wal-push"};
  pgvault::CommonOptions common;
  std::string path;
  bool catch_up = false;
  app.add_option("path", path, "the WAL file to archive (%p: relative to the data directory, or absolute)");
  app.add_flag("--catch-up", catch_up,
               "push everything the repositories are owed (with --repo NAME: what NAME is owed), reading each "
               "file from a repository that holds it; exits non-zero when something is still owed");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::tool_spec("wal-push"), app, argc, argv, [&] {
    if (catch_up == !path.empty()) {
      throw pgvault::Error(pgvault::ErrorKind::InvalidInput, "give either the WAL file to archive or --catch-up");
    }
    if (catch_up) {
      // Every repository stays configured: the files come from the others.
      pgvault::CommonOptions all = common;
      all.repo.reset();
      pgvault::catch_up_command(pgvault::load_tool_config(all), common.repo.value_or(""));
      return 0;
    }
    pgvault::Config config = pgvault::load_tool_config(common);
    if (const char* worker = std::getenv(pgvault::kPushWorkerEnv)) {
      pgvault::push_worker(config, worker);
      return 0;
    }
    pgvault::recorded_wal_call(config, pgvault::WalTool::Push, path, [&] {
      pgvault::archive_command(config, path, [&] { return pgvault::spawn_push_worker(argc, argv, path); });
      return true;
    });
    return 0;
  });
}
