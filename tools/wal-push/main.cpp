// wal-push: archive_command = 'wal-push %p'. Exit codes: docs/EXIT-CODES.md.
#include "common/archive/archive.h"
#include "common/cli/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"Archive one WAL file into the pgvault repository (archive_command = 'wal-push %p').\n"
               "Exits 0 only once the file is durable in the repository.",
               "wal-push"};
  pgvault::CommonOptions common;
  std::string path;
  app.add_option("path", path, "the WAL file to archive (%p: relative to the data directory, or absolute)")
      ->required();
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::tool_spec("wal-push"), app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    pgvault::archive_command(config, path);
    return 0;
  });
}
