// restore-drill: restore a backup into a temporary directory, start PostgreSQL on it, check it, stop it,
// remove it, and report pass/fail with the measured RTO and the repository's RPO (common/drill/drill.h).
// Exit codes: docs/EXIT-CODES.md.
#include <cstdio>

#include <spdlog/spdlog.h>

#include "common/archive/archive.h"
#include "common/base/fs.h"
#include "common/cli/cli.h"
#include "common/cli/self_exe.h"
#include "common/drill/drill.h"
#include "tools/shared/target_options.h"

namespace {

struct Flags {
  pgvault::TargetFlags target;
  std::vector<std::string> counts;
  std::optional<std::string> bin_dir, work_dir, sql_file, sql_database, timeout;
  std::optional<int> port;
  bool json = false;
  std::string prometheus;
};

void add_drill_options(CLI::App& app, Flags& f, pgvault::DrillOptions& opts) {
  app.add_option("--backup", opts.restore.backup, "label of the backup to restore (default: the newest that can reach the target)");
  pgvault::add_target_options(app, f.target);
  app.add_option("--count", f.counts, "count the rows of this table and report them (repeatable; adds to\n"
                                      "[drill] counts)")->type_name("DB.SCHEMA.TABLE");
  app.add_option("--sql", f.sql_file, "a file of queries (separated by ;) that must each return true ([drill] sql_file)")
      ->type_name("FILE");
  app.add_option("--sql-database", f.sql_database, "the database the --sql queries run in ([drill] sql_database; postgres)");
  app.add_option("--bin-dir", f.bin_dir, "PostgreSQL server programs ([drill] bin_dir; default\n"
                                         "/usr/lib/postgresql/<the backup's major version>/bin)");
  app.add_option("--work-dir", f.work_dir, "absent or empty directory to work in, removed (emptied) afterwards; it holds\n"
                                           "the server's socket: no comma, at most 92 bytes ([drill] work_dir;\n"
                                           "default: a new one under $TMPDIR or /var/tmp)");
  app.add_option("--port", f.port, "the server's port, naming its socket ([drill] port; 0 = a free one)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--timeout", f.timeout, "for the server to start and recovery to end ([drill] timeout; 30m)")
      ->type_name("DURATION");
  app.add_option("--parallel", opts.restore.parallel, "bundles decoded at once (default: [backup] parallel)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", f.json, "print the report as JSON on stdout");
  app.add_option("--prometheus", f.prometheus, "write pgvault_drill_* gauges to FILE (atomically, for node_exporter's\n"
                                               "textfile collector) or - for stdout")->type_name("FILE|-");
}

// The flags over the [drill] configuration.
void resolve(const Flags& f, const pgvault::Config& config, pgvault::DrillOptions& opts) {
  const auto& d = config.drill;
  opts.restore.target = pgvault::recovery_target_from_flags(f.target);
  opts.bin_dir = f.bin_dir.value_or(d.bin_dir);
  opts.work_dir = f.work_dir.value_or(d.work_dir);
  opts.port = f.port.value_or(d.port);
  opts.sql_file = f.sql_file.value_or(d.sql_file);
  opts.sql_database = f.sql_database.value_or(d.sql_database);
  std::string timeout = f.timeout.value_or(d.timeout);
  opts.timeout = static_cast<int>(pgvault::parse_duration(timeout, "--timeout"));
  if (opts.timeout <= 0) throw pgvault::Error(pgvault::ErrorKind::InvalidInput, "--timeout must be positive");
  opts.counts = pgvault::parse_count_list(d.counts);
  for (const auto& c : f.counts) opts.counts.push_back(pgvault::parse_count_spec(c));
}

void write_prometheus(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::fputs(text.c_str(), stdout);
    return;
  }
  pgvault::AtomicFileWriter w(path, false, true, 0644);
  w.write(pgvault::ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  w.commit();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Restore drill: restore the newest backup (or --backup, to a target) into a temporary data\n"
               "directory, start PostgreSQL on it (Unix socket only, archiving off), wait for recovery to end,\n"
               "check that every database connects and reads pg_class, count the --count tables, run the --sql\n"
               "queries, then stop the server and remove the directory. Reports pass/fail with the failed\n"
               "step, the measured RTO (restore + recovery seconds) and the RPO the repository offers now\n"
               "(seconds since the newest archived WAL segment). As root, the server runs as user postgres.",
               "restore-drill"};
  pgvault::CommonOptions common;
  pgvault::DrillOptions opts;
  Flags flags;
  add_drill_options(app, flags, opts);
  pgvault::add_common_options(app, common);
  const auto& table = pgvault::exit_codes("restore-drill");
  return pgvault::run_tool(pgvault::notifying(pgvault::tool_spec("restore-drill")), app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    resolve(flags, config, opts);
    opts.restore.restore_command = pgvault::restore_command_for(
        pgvault::sibling_executable("wal-fetch", "restore-drill"), config, common.set);
    pgvault::install_drill_signal_handlers();
    pgvault::Repository repo(pgvault::open_storage(config), config);
    repo.require_initialised();
    pgvault::DrillReport report = pgvault::run_drill(repo, opts);
    pgvault::clear_prefetch_spool(config);  // nothing prefetched for the drill's recovery is wanted again
    if (!report.passed()) spdlog::error("drill failed ({}): {}", pgvault::failure_name(report.failure), report.reason);
    std::string text = flags.json ? pgvault::drill_json(report) : pgvault::drill_text(report);
    std::fputs(text.c_str(), flags.prometheus == "-" ? stderr : stdout);  // stdout: the metrics then
    if (!flags.prometheus.empty()) write_prometheus(flags.prometheus, pgvault::drill_prometheus(report));
    return report.passed() ? pgvault::kExitSuccess
                           : pgvault::outcome_code(table, pgvault::failure_name(report.failure));
  });
}
