// pitr-prepare: restore a base backup and set the data directory up for point-in-time recovery.
// Exit codes: docs/EXIT-CODES.md.
#include <unistd.h>

#include "common/archive/archive.h"
#include "common/cli/cli.h"
#include "common/cli/self_exe.h"
#include "common/restore/pitr_options.h"
#include "tools/shared/target_options.h"

int main(int argc, char** argv) {
  CLI::App app{"Restore a base backup from the pgvault repository into an empty data directory and write the\n"
               "recovery settings (recovery.signal, postgresql.auto.conf) for point-in-time recovery.\n"
               "Without a target flag, recovery replays all archived WAL (latest). A time, xid or name target\n"
               "is resolved from the WAL index before anything is written: the newest backup that ends before\n"
               "the record recovery stops at is chosen, and a target the archive does not hold is refused\n"
               "(archive-info --targets lists restore points and commit times).\n"
               "Several repositories: the backup comes from the first ([repository]) or the one --repo names,\n"
               "and the WAL check covers that repository. The restore_command written reads every configured\n"
               "repository in order (a segment one lacks comes from another); with --repo it carries --repo\n"
               "too and reads that repository only.",
               "pitr-prepare"};
  pgvault::CommonOptions common;
  pgvault::RestoreOptions opts;
  pgvault::TargetFlags target;
  std::vector<std::string> ts_map;
  bool json = false;
  app.add_option("--pgdata,-D", opts.pgdata, "data directory to restore into (absent or empty; see --force)")->required();
  pgvault::add_target_options(app, target);
  app.add_option("--target-action", opts.target_action, "when the target is reached: promote (default), pause, shutdown")
      ->check(CLI::IsMember({"promote", "pause", "shutdown"}));
  app.add_option("--target-timeline", opts.target_timeline, "latest (default), current, or a timeline number");
  app.add_flag("--target-exclusive", opts.exclusive, "stop just before the target (recovery_target_inclusive = off)");
  app.add_option("--backup", opts.backup, "label of the backup to restore (default: the newest that can reach the target)");
  app.add_flag("--standby", opts.standby, "write standby.signal instead of recovery.signal");
  app.add_option("--tablespace-map", ts_map, "restore the tablespace at OLD into NEW (repeatable)")->type_name("OLD=NEW");
  app.add_option("--archive-mode", opts.archive_mode,
                 "off (default): write archive_mode = off, so the restored server never archives into the\n"
                 "repository it came from (a test restore's new timeline would land there); preserve: keep the\n"
                 "server's archive settings, for a restore that becomes the new primary")
      ->check(CLI::IsMember({"off", "preserve"}));
  app.add_flag("--force", opts.force, "remove the existing contents of the data directory first");
  app.add_flag("--dry-run", opts.dry_run, "check the plan, the archive and the data directory as a real run does, and\n"
                                         "print the plan; write nothing");
  app.add_option("--parallel", opts.parallel, "bundles decoded at once (default: [backup] parallel; 0 = cores); a\n"
                                             "bundle of 64 MiB or more is written by a second thread while it is decoded")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", json, "print a JSON summary on stdout");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::tool_spec("pitr-prepare"), app, argc, argv, [&] {
    opts.target = pgvault::recovery_target_from_flags(target);
    opts.tablespace_map = pgvault::parse_tablespace_map(ts_map);
    pgvault::Config config = pgvault::load_tool_config(common);
    opts.restore_command = pgvault::restore_command_for(pgvault::sibling_executable("wal-fetch", "pitr-prepare"),
                                                        config, common.set, common.repo);
    opts.progress = isatty(STDERR_FILENO) != 0;
    pgvault::Repository repo(pgvault::open_storage(config), config);
    repo.require_initialised();
    pgvault::RestoreResult r = pgvault::run_restore(repo, opts);
    if (!opts.dry_run) pgvault::clear_prefetch_spool(config);  // nothing prefetched for an earlier recovery
    pgvault::print_restore_result(r, opts, json);
    return pgvault::kExitSuccess;
  });
}
