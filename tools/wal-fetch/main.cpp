// wal-fetch: restore_command = 'wal-fetch %f %p'. Exit codes: docs/EXIT-CODES.md.
#include <cstdlib>
#include <string>

#include "common/archive/archive.h"
#include "common/base/fs.h"
#include "common/cli/cli.h"
#include "common/repo/wal_state.h"

int main(int argc, char** argv) {
  pgvault::remove_temp_files_on_signal();  // SIGTERM/SIGINT (a fast shutdown) leave no temporary file
  CLI::App app{"Restore one WAL file from the pgvault repository (restore_command = 'wal-fetch %f %p').\n"
               "Exits 0 after a verified, atomic write; 1 when the file is not in the archive; on any\n"
               "other failure 200 in archive recovery (PostgreSQL aborts) or 1 on a standby.\n"
               "With several repositories they are tried in configured order ([repository] first): one that\n"
               "lacks the file or fails (unreachable, corrupt copy, wrong key, another database system) is\n"
               "passed over. Exit 1 only when every repository says the file is not there; when one failed and\n"
               "none served, it is a failure (200, or 1 on a standby). --repo NAME reads that one only.\n"
               "With [fetch] prefetch > 0, a detached worker fetches the next segments ahead.",
               "wal-fetch"};
  pgvault::CommonOptions common;
  std::string name, dest;
  app.add_option("name", name, "the WAL file name PostgreSQL asks for (%f)")->required();
  app.add_option("dest", dest, "where to write it (%p, relative to the data directory)")->required();
  pgvault::add_common_options(app, common);
  // on_error from the config once it is loaded; "auto" until then (a broken config still aborts
  // archive recovery, or reads as missing on a standby). Every failure is "missing" on a standby (it
  // falls back to streaming), else it aborts recovery.
  std::string on_error = "auto";
  auto standby = [&on_error] { return pgvault::fetch_error_mode(on_error) == pgvault::FetchErrorMode::Missing; };
  return pgvault::run_tool(pgvault::tool_spec("wal-fetch", standby), app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    on_error = config.fetch.on_error;
    if (const char* worker = std::getenv(pgvault::kPrefetchWorkerEnv)) {
      pgvault::prefetch_worker(config, worker);
      return pgvault::kExitSuccess;
    }
    bool fetched = pgvault::recorded_wal_call(config, pgvault::WalTool::Fetch, dest, [&] {
      auto spawn = [&] { pgvault::spawn_prefetch_worker(argc, argv, name); };
      return pgvault::restore_command(config, name, dest, spawn) == pgvault::FetchOutcome::Fetched;
    });
    return fetched ? pgvault::kExitSuccess : pgvault::outcome_code(pgvault::exit_codes("wal-fetch"), "missing");
  });
}
