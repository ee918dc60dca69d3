// archive-info: what the repository holds (backups, WAL per timeline, recovery window); --targets lists the
// restore points and commit times the WAL index records; --verify reads and checks every object. Exit
// codes: docs/EXIT-CODES.md.
#include <unistd.h>

#include <cstdio>

#include "common/cli/cli.h"
#include "common/report/inventory_report.h"

int main(int argc, char** argv) {
  CLI::App app{"Show the backups, WAL (per timeline, with gaps), timeline history and recovery window of the\n"
               "pgvault repository. --verify reads every object and checks digests, authentication tags,\n"
               "every backed-up file and WAL continuity; it exits 1 when it finds a problem. --targets lists\n"
               "what one can recover to: named restore points and the commit-time range per timeline.",
               "archive-info"};
  pgvault::CommonOptions common;
  bool json = false, verify = false, targets = false;
  int parallel = 0;
  app.add_flag("--json", json, "machine-readable output (keys documented in common/report/inventory_report.h)");
  app.add_flag("--verify", verify, "read and verify every object, check WAL continuity");
  app.add_flag("--targets", targets,
               "list the named restore points and the first and last commit time per timeline, from the WAL\n"
               "index (reads one small object per archived segment, in parallel)");
  app.add_option("--parallel", parallel, "objects verified or read at once (default: [backup] parallel; 0 = cores)")
      ->check(CLI::NonNegativeNumber);
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::tool_spec("archive-info"), app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    pgvault::Repository repo(pgvault::open_storage(config), config);
    repo.require_initialised();
    pgvault::Inventory inv = pgvault::load_inventory(repo);
    pgvault::RecoveryWindow window = pgvault::recovery_window(inv);
    const int workers = parallel > 0 ? parallel : config.backup.parallel;
    std::optional<pgvault::RecoveryTargets> listed;
    if (targets) listed = pgvault::load_recovery_targets(repo, inv, workers);
    std::optional<pgvault::VerifyReport> report;
    if (verify) {
      pgvault::VerifyOptions vo;
      vo.parallel = workers;
      vo.progress = !json && isatty(STDERR_FILENO) != 0;
      report = pgvault::verify_repository(repo, inv, vo);
    }
    const pgvault::VerifyReport* r = report ? &*report : nullptr;
    const pgvault::RecoveryTargets* t = listed ? &*listed : nullptr;
    std::string out = json ? pgvault::inventory_json(repo.describe(), inv, window, r, t)
                           : pgvault::inventory_text(repo.describe(), inv, window, r, t);
    std::fputs(out.c_str(), stdout);
    return report && !report->problems.empty() ? pgvault::outcome_code(pgvault::exit_codes("archive-info"), "problems")
                                                 : pgvault::kExitSuccess;
  });
}
