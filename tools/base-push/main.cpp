// base-push: take a base backup of a running PostgreSQL server into the repository.
// Exit codes: docs/EXIT-CODES.md.
#include <malloc.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/backup/backup.h"
#include "common/cli/cli.h"
#include "common/cli/notify.h"
#include "common/repo/marks.h"

int main(int argc, char** argv) {
  CLI::App app{"Take a full or incremental base backup of a running PostgreSQL server (replication connection,\n"
               "BASE_BACKUP) into "
               "the pgvault repository. The backup becomes visible once its stop segment is archived.",
               "base-push"};
  pgvault::CommonOptions common;
  std::optional<std::string> conninfo, checkpoint;
  int archive_timeout = 600;
  bool json = false, no_fallback = false, keep = false;
  std::vector<std::string> annotate;
  std::string type = "full";
  app.add_option("--conninfo", conninfo, "libpq connection string (default: [backup] conninfo, then PG* variables)");
  app.add_option("--checkpoint", checkpoint, "checkpoint at the start: fast or spread (default: [backup] checkpoint)")
      ->check(CLI::IsMember({"fast", "spread"}));
  app.add_option("--archive-timeout", archive_timeout, "seconds to wait for the stop segment to be archived")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--type", type,
                 "full (default) or incremental: only what changed since the newest usable backup (its parent).\n"
                 "PostgreSQL 17+ with summarize_wal = on: the server sends the changed blocks (WAL summaries);\n"
                 "otherwise pgvault keeps the blocks whose page LSN is at or past the parent's start;\n"
                 "or diff (differential): an incremental whose parent is the newest usable full backup")
      ->check(CLI::IsMember({"full", "incremental", "diff"}));
  app.add_flag("--no-fallback", no_fallback,
               "with --type incremental or diff: fail (exit 2) instead of taking a full\n"
               "backup when no parent is usable, or client-side blocks when summarize_wal is off");
  app.add_flag("--keep", keep,
               "mark the backup kept: retention-prune never deletes it, its parents or its WAL\n"
               "until retention-prune --release LABEL");
  app.add_option("--annotate", annotate, "attach an annotation, e.g. --annotate reason=pre-upgrade (repeatable;\n"
                 "KEY: 1-64 of A-Z a-z 0-9 _ . -, VALUE: up to 1024 printable ASCII characters)")
      ->type_name("KEY=VALUE");
  app.add_flag("--json", json, "print a JSON summary on stdout");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::notifying(pgvault::tool_spec("base-push")), app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    if (config.repository.type == "s3") {
      // Into S3, blocks of 4 MiB and more (the uploads' buffers and parts, 5 MiB at least) are mapped and
      // unmapped. Otherwise glibc raises its threshold to the size of the first such block freed (up to
      // 32 MiB), later ones are carved from the threads' arenas and stay resident once freed, and the peak
      // RSS grew with the database size (pgbench scale 50 -> 200: 91 -> 135 MiB; with this 72 -> 83 MiB,
      // for 1.1-1.2x the CPU in page faults: tests/bench/results/scale.md, 2026-12-02). A local
      // repository keeps glibc's default (its growth was smaller, and its backups are CPU-bound).
      ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
    }
    pgvault::BackupOptions opts = pgvault::backup_options_from_config(config);
    if (conninfo) opts.conninfo = *conninfo;
    if (checkpoint) opts.checkpoint = *checkpoint;
    opts.archive_timeout = archive_timeout;
    opts.type = type;
    opts.no_fallback = no_fallback;
    if (keep || !annotate.empty()) {
      opts.marks.emplace();
      opts.marks->keep = keep;
      for (const auto& a : annotate) {
        auto [k, v] = pgvault::parse_annotation(a, "--annotate");
        pgvault::set_annotation(*opts.marks, k, v);
      }
    }
    opts.progress = isatty(STDERR_FILENO) != 0;
    pgvault::install_interrupt_handlers();
    pgvault::Repository repo(pgvault::open_storage(config), config);
    repo.require_initialised();
    pgvault::BackupResult result = pgvault::run_base_backup(repo, opts);
    pgvault::notify_set_backup(result.manifest.label);
    spdlog::info("{}", pgvault::backup_summary_line(result));
    if (json) std::fputs(pgvault::backup_summary_json(result).c_str(), stdout);
    return 0;
  });
}
