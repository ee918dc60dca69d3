// wal-fetch: restore_command = 'wal-fetch %f %p'. Exit codes: docs/EXIT-CODES.md.
#include <cstdlib>
#include <string>

#include "common/archive/archive.h"
#include "common/base/fs.h"
#include "common/cli/cli.h"

namespace {

constexpr int kMissing = 1;          // not in the archive: PostgreSQL ends archive recovery here
constexpr int kAbortRecovery = 200;  // > 125: PostgreSQL stops recovery with a FATAL error

// on_error from the config once it is loaded; "auto" until then (a broken config still aborts
// archive recovery, or reads as missing on a standby).
std::string g_on_error = "auto";

int exit_code(const pgvault::Error& e) {
  (void)e;  // every failure other than "missing" is treated alike; the log line says which
  return pgvault::fetch_error_mode(g_on_error) == pgvault::FetchErrorMode::Missing ? kMissing : kAbortRecovery;
}

}  // namespace

int main(int argc, char** argv) {
  pgvault::remove_temp_files_on_signal();  // SIGTERM/SIGINT (a fast shutdown) leave no temporary file
  CLI::App app{"Restore one WAL file from the pgvault repository (restore_command = 'wal-fetch %f %p').\n"
               "Exits 0 after a verified, atomic write; 1 when the file is not in the archive; on any\n"
               "other failure 200 in archive recovery (PostgreSQL aborts) or 1 on a standby.\n"
               "With [fetch] prefetch > 0, a detached worker fetches the next segments ahead.",
               "wal-fetch"};
  pgvault::CommonOptions common;
  std::string name, dest;
  app.add_option("name", name, "the WAL file name PostgreSQL asks for (%f)")->required();
  app.add_option("dest", dest, "where to write it (%p, relative to the data directory)")->required();
  pgvault::add_common_options(app, common);
  return pgvault::run_tool({"wal-fetch", exit_code}, app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    g_on_error = config.fetch.on_error;
    if (const char* worker = std::getenv(pgvault::kPrefetchWorkerEnv)) {
      pgvault::prefetch_worker(config, worker);
      return 0;
    }
    auto outcome = pgvault::restore_command(config, name, dest, [&] { pgvault::spawn_prefetch_worker(argc, argv, name); });
    return outcome == pgvault::FetchOutcome::Fetched ? 0 : kMissing;
  });
}
