// wal-push: archive_command = 'wal-push %p'. Exit codes: docs/EXIT-CODES.md.
#include "common/archive/archive.h"
#include "common/cli/cli.h"

namespace {

// Never above 125: PostgreSQL treats that as fatal to the archiver. Every non-zero code makes
// PostgreSQL keep the file and retry later.
int exit_code(const pgvault::Error& e) {
  using K = pgvault::ErrorKind;
  switch (e.kind()) {
    case K::InvalidInput:
    case K::Config:
    case K::NotInitialised: return 2;
    case K::Duplicate: return 3;
    case K::Foreign: return 4;
    case K::Auth: return 5;
    case K::Corruption: return 6;
    default: return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Archive one WAL file into the pgvault repository (archive_command = 'wal-push %p').\n"
               "Exits 0 only once the file is durable in the repository.",
               "wal-push"};
  pgvault::CommonOptions common;
  std::string path;
  app.add_option("path", path, "the WAL file to archive (%p: relative to the data directory, or absolute)")
      ->required();
  pgvault::add_common_options(app, common);
  return pgvault::run_tool({"wal-push", exit_code}, app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    pgvault::archive_command(config, path);
    return 0;
  });
}
