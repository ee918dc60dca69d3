// retention-prune: delete the backups and WAL the retention policy no longer needs. Exit codes:
// docs/EXIT-CODES.md. The run itself, and its test-only environment: common/retention/run.h.
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/cli/cli.h"
#include "common/retention/marks_run.h"
#include "common/retention/prune_all.h"
#include "common/retention/run.h"

namespace {

// The policy flags override every repository's policy: [retention] (which [repositories.NAME.retention]
// tables inherit) and each other repository's own table (its names come from a first load).
void add_policy_flags(pgvault::CommonOptions& common,
                      const std::vector<std::pair<std::string, std::optional<std::string>>>& flags) {
  bool any = false;
  for (const auto& [key, value] : flags) any = any || value.has_value();
  if (!any) return;
  pgvault::CommonOptions all = common;
  all.repo.reset();
  const pgvault::Config config = pgvault::load_tool_config(all);
  for (const auto& [key, value] : flags) {
    if (!value) continue;
    common.set.push_back("retention." + key + "=" + *value);
    for (std::size_t i = 1; i < config.repositories.size(); ++i) {
      common.set.push_back("repositories." + config.repositories[i].repository.name + ".retention." + key + "=" + *value);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Delete the backups and WAL that the [retention] policy no longer needs, and garbage-collect\n"
               "incomplete backups and leftover temporary files. One run at a time per repository.\n"
               "Every configured repository is pruned by its own policy ([retention], or its\n"
               "[repositories.NAME.retention]), one report each; --repo NAME prunes that one only. A failure in\n"
               "one repository does not stop the others; the exit code is then that failure's.",
               "retention-prune"};
  pgvault::CommonOptions common;
  pgvault::PruneOptions prune;
  std::optional<std::string> full, window, min_full, grace, incr_window;
  std::string stale = "1h";
  app.add_flag("--dry-run", prune.dry_run, "print the plan; delete nothing");
  app.add_flag("--json", prune.json, "print the plan (and, after a run, the result) as JSON on stdout");
  app.add_option("--full-backups", full, "keep the newest N full backups (overrides full_backups of every repository's policy)")
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
    const std::vector<std::pair<std::string, std::optional<std::string>>> flags = {
        {"full_backups", full}, {"window", window}, {"incremental_window", incr_window},
        {"min_full_backups", min_full}, {"incomplete_grace", grace}};
    add_policy_flags(common, flags);
    pgvault::Config config = pgvault::load_tool_config(common);
    if (pgvault::mark_change(mark, keep_label, release_label, annotate)) {  // not a prune: mark a backup
      return pgvault::run_mark_tool(config, mark, pgvault::stale_lock_timeout(stale), pgvault::retention_clock());
    }
    prune.stale_after = pgvault::stale_lock_timeout(stale);
    prune.now = pgvault::retention_clock();
    std::vector<pgvault::PruneFailure> failures;
    std::fputs(pgvault::prune_repositories(pgvault::repository_configs(config), prune, failures).c_str(), stdout);
    if (!failures.empty()) throw pgvault::prune_failures_error(failures);
    return pgvault::kExitSuccess;
  });
}
