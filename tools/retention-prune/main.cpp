// retention-prune: delete the backups and WAL the retention policy no longer needs. Exit codes:
// docs/EXIT-CODES.md. The run itself, and its test-only environment: common/retention/run.h.
#include <cstdio>
#include <optional>
#include <string>

#include "common/cli/cli.h"
#include "common/retention/marks_run.h"
#include "common/retention/run.h"

int main(int argc, char** argv) {
  CLI::App app{"Delete the backups and WAL that the [retention] policy no longer needs, and garbage-collect\n"
               "incomplete backups and leftover temporary files. One run at a time per repository.",
               "retention-prune"};
  pgvault::CommonOptions common;
  pgvault::PruneOptions prune;
  std::optional<std::string> full, window, min_full, grace, incr_window;
  std::string stale = "1h";
  app.add_flag("--dry-run", prune.dry_run, "print the plan; delete nothing");
  app.add_flag("--json", prune.json, "print the plan (and, after a run, the result) as JSON on stdout");
  app.add_option("--full-backups", full, "keep the newest N full backups (overrides [retention] full_backups)")
      ->type_name("N");
  app.add_option("--window", window, "keep what recovers to any point this far back, e.g. 30d (\"\" = off)")
      ->type_name("DURATION");
  app.add_option("--incremental-window", incr_window,
                 "incremental backups older than this go unless a kept backup needs them, e.g. 7d (\"\" = off)")
      ->type_name("DURATION");
  app.add_option("--min-full-backups", min_full, "never fewer full backups than this")->type_name("N");
  app.add_option("--incomplete-grace", grace, "incomplete backups older than this are deleted (default 24h)")
      ->type_name("DURATION");
  app.add_option("--stale-lock-timeout", stale, "take over a lock not refreshed for this long (default 1h; a running prune refreshes its lock every third of it)")
      ->type_name("DURATION");
  pgvault::MarkChange mark;
  std::optional<std::string> keep_label, release_label;
  std::vector<std::pair<std::string, std::string>> annotate;
  auto* keep_opt = app.add_option("--keep", keep_label, "mark backup LABEL kept (never deleted, nor its parents and WAL,\n"
                                  "until released), then exit without pruning")->type_name("LABEL");
  app.add_option("--release", release_label, "end the kept mark of backup LABEL, then exit without pruning")
      ->type_name("LABEL")->excludes(keep_opt);
  app.add_option("--annotate", annotate, "set annotation KEY of backup LABEL (an empty VALUE removes it), then\n"
                 "exit without pruning; repeatable")->type_name("LABEL KEY=VALUE");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::notifying(pgvault::tool_spec("retention-prune")), app, argc, argv, [&] {
    if (full) common.set.push_back("retention.full_backups=" + *full);
    if (window) common.set.push_back("retention.window=" + *window);
    if (incr_window) common.set.push_back("retention.incremental_window=" + *incr_window);
    if (min_full) common.set.push_back("retention.min_full_backups=" + *min_full);
    if (grace) common.set.push_back("retention.incomplete_grace=" + *grace);
    pgvault::Config config = pgvault::load_tool_config(common);
    if (pgvault::mark_change(mark, keep_label, release_label, annotate)) {  // not a prune: mark a backup
      return pgvault::run_mark_tool(config, mark, pgvault::stale_lock_timeout(stale), pgvault::retention_clock());
    }
    pgvault::RetentionPolicy policy = pgvault::retention_policy(config);
    prune.stale_after = pgvault::stale_lock_timeout(stale);
    prune.now = pgvault::retention_clock();
    pgvault::Repository repo(pgvault::open_storage(config), config);
    repo.require_initialised();  // a mistyped path or bucket: no lock object is written there
    std::fputs(pgvault::run_retention_prune(repo, policy, prune).c_str(), stdout);
    return pgvault::kExitSuccess;
  });
}
