// backup-copy: copy complete backups (with their chains) and the WAL they need from one configured
// repository to another, verifying every object, the manifest last. Exit codes: docs/EXIT-CODES.md.
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>

#include "common/backup/backup.h"
#include "common/backup/copy.h"
#include "common/cli/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"Copy complete backups and the WAL they need from one configured repository to another, without\n"
               "the database: every object is read verified and written into the destination (its stored bytes\n"
               "when both repositories use the same compression and key, else re-encoded), [backup] parallel\n"
               "objects at a time, the manifest of each backup last (an interrupted copy leaves no visible\n"
               "backup; the next run finishes it).\n"
               "Default: every complete backup of --from that --to lacks, oldest first; an incremental brings\n"
               "the members of its chain the destination lacks, parents first. A backup's marks (base-push\n"
               "--keep/--annotate) are copied with it. A backup whose label is another\n"
               "backup's at the destination (same second, other run) is not copied: it is named, the rest is\n"
               "copied, and the exit code is 3.",
               "backup-copy"};
  pgvault::CommonOptions common;
  std::string from, to;
  std::optional<std::string> label;
  bool json = false;
  app.add_option("--from", from, "the repository to copy from (its name: primary, or a [repositories.NAME])")
      ->required()->type_name("NAME");
  app.add_option("--to", to, "the repository to copy to (it must exist: repo-init)")->required()->type_name("NAME");
  app.add_option("--backup", label, "copy this backup (and the members of its chain the destination lacks)")
      ->type_name("LABEL");
  app.add_flag("--json", json,
               "print {\"from\", \"to\", \"copied\": [labels], \"already_present\": [labels], \"not_copied\":\n"
               "[{\"label\", \"reason\"}], \"objects\", \"bytes\", \"wal_already_present\", \"seconds\"} on stdout");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::notifying(pgvault::tool_spec("backup-copy")), app, argc, argv, [&] {
    if (common.repo) throw pgvault::Error(pgvault::ErrorKind::InvalidInput, "backup-copy takes --from and --to, not --repo");
    if (from == to) throw pgvault::Error(pgvault::ErrorKind::InvalidInput, "--from and --to name the same repository " + from);
    pgvault::Config config = pgvault::load_tool_config(common);
    pgvault::Config src_config = pgvault::select_repository(config, from);
    pgvault::Config dst_config = pgvault::select_repository(config, to);
    pgvault::install_interrupt_handlers();
    pgvault::Repository src(pgvault::open_storage(src_config), src_config);
    pgvault::Repository dst(pgvault::open_storage(dst_config), dst_config);
    pgvault::CopyOptions opts;
    opts.label = label;
    opts.progress = isatty(STDERR_FILENO) != 0;
    opts.after_step = pgvault::copy_test_hook();
    pgvault::CopyResult result = pgvault::run_backup_copy(src, dst, opts);
    std::fputs((json ? pgvault::copy_summary_json(result) : pgvault::copy_summary_text(result)).c_str(), stdout);
    pgvault::throw_if_not_copied(result);
    return pgvault::kExitSuccess;
  });
}
