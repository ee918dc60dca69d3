// archive-info: what the repositories hold (backups, WAL per timeline, recovery window, what each is owed
// and how far it lags behind the others); --targets lists the restore points and commit times the WAL
// index records; --verify reads and checks every object; --check gives a Nagios verdict
// (report/check.h); --prometheus writes metrics (report/prometheus.h). Exit codes: docs/EXIT-CODES.md.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string_view>

#include "common/base/log.h"
#include "common/cli/cli.h"
#include "common/report/check.h"
#include "common/report/fleet_report.h"
#include "common/report/inventory_report.h"
#include "common/report/prometheus.h"
#include "common/repo/wal_state.h"

namespace {

using namespace pgvault;

struct Options {
  CommonOptions common;
  bool json = false, verify = false, targets = false, check = false;
  std::string prometheus;
  int parallel = 0;
};

void add_options(CLI::App& app, Options& o) {
  app.add_flag("--json", o.json, "machine-readable output (keys documented in common/report/inventory_report.h\n"
                                 "and fleet_report.h; with --check: report/check.h)");
  app.add_flag("--verify", o.verify, "read and verify every object, check WAL continuity (every repository, or\n"
                                     "the one --repo names); the verdict is recorded for --check's verify_age\n"
                                     "([check] state_dir)");
  app.add_flag("--targets", o.targets,
               "list the named restore points and the first and last commit time per timeline, from the WAL\n"
               "index (reads one small object per archived segment, in parallel)");
  app.add_flag("--check", o.check,
               "health check with Nagios exit codes (0 ok, 1 warning, 2 critical, 3 unknown): the summary\n"
               "line, then one line per finding; thresholds from [check] (override with --set check.KEY=V)");
  app.add_option("--prometheus", o.prometheus,
                 "write metrics in Prometheus text format to FILE (atomically, for node_exporter's textfile\n"
                 "collector) or to stdout with -")
      ->type_name("FILE|-");
  app.add_option("--parallel", o.parallel, "objects verified or read at once (default: [backup] parallel; 0 = cores)")
      ->check(CLI::NonNegativeNumber);
  add_common_options(app, o.common);
}

// --verify and --targets for every repository that was read.
struct Extras {
  std::vector<std::optional<VerifyReport>> verify;
  std::vector<std::optional<RecoveryTargets>> targets;
  std::vector<FleetExtras> pointers;
  std::size_t problems = 0;
};

// The verdict of --verify in the local state (repo/wal_state.h), for --check's verify_age and the
// metrics. A record that cannot be written is a warning: the verdict itself stands.
VerifyRecord record_verify(const RepositoryView& v, const VerifyReport& report) {
  VerifyRecord r;
  r.time = std::time(nullptr);
  r.ok = report.problems.empty();
  r.objects = report.objects;
  r.bytes = report.bytes;
  r.problems = report.problems.size();
  try {
    write_verify_record(v.repo->config(), r);
  } catch (const Error& e) {
    spdlog::warn("repository {}: the verify record was not written: {}", v.name, e.what());
  }
  return r;
}

Extras run_extras(std::vector<RepositoryView>& views, const Options& o, int workers) {
  Extras x;
  x.verify.resize(views.size());
  x.targets.resize(views.size());
  for (std::size_t i = 0; i < views.size(); ++i) {
    RepositoryView& v = views[i];
    if (!v.error.empty()) continue;
    if (o.targets) x.targets[i] = load_recovery_targets(*v.repo, v.inv, workers);
    if (!o.verify) continue;
    VerifyOptions vo;
    vo.parallel = workers;
    vo.progress = !o.json && !o.check && isatty(STDERR_FILENO) != 0;
    x.verify[i] = verify_repository(*v.repo, v.inv, vo);
    x.problems += x.verify[i]->problems.size();
    v.last_verify = record_verify(v, *x.verify[i]);
  }
  for (std::size_t i = 0; i < views.size(); ++i) {
    x.pointers.push_back({x.verify[i] ? &*x.verify[i] : nullptr, x.targets[i] ? &*x.targets[i] : nullptr});
  }
  return x;
}

// The exit code of the first unreadable repository (its kind, as when it is the only one), else 0.
int unreadable_code(const ToolSpec& spec, const std::vector<RepositoryView>& views) {
  for (const auto& v : views) {
    if (!v.error.empty()) {
      spdlog::error("repository {}: {}", v.name, v.error);
      return spec.exit_code(Error(v.error_kind, v.error));
    }
  }
  return kExitSuccess;
}

int run_check_mode(const Config& config, const std::vector<RepositoryView>& views, const Extras& x,
                   const std::optional<ServerStatus>& server, const Options& o) {
  std::vector<RepositoryFacts> facts;
  for (std::size_t i = 0; i < views.size(); ++i) {
    facts.push_back(repository_facts(views[i]));
    if (x.verify[i]) facts.back().verify_problems = x.verify[i]->problems.size();
  }
  CheckResult r = run_check(facts, server, check_thresholds(config), std::time(nullptr));
  std::string out = o.json ? check_json(r, views.size()) : check_text(r, views.size());
  std::fputs(out.c_str(), stdout);
  return static_cast<int>(r.status);
}

int run(const ToolSpec& spec, const Options& o) {
  Config config = load_tool_config(o.common);
  if (o.check) check_thresholds(config);  // a bad threshold is a config error before any reading
  std::vector<RepositoryView> views = load_repositories(config);
  if (views.size() == 1 && !views[0].error.empty() && !o.check && o.prometheus.empty()) {
    throw Error(views[0].error_kind, views[0].error);  // one repository: as before
  }
  const int workers = o.parallel > 0 ? o.parallel : config.backup.parallel;
  Extras x = run_extras(views, o, workers);
  std::optional<ServerStatus> server;
  if ((o.check || !o.prometheus.empty()) && !config.backup.conninfo.empty()) {
    server = read_server_status(config.backup.conninfo);
  }
  if (!o.prometheus.empty()) write_metrics_file(prometheus_text(views, server, std::time(nullptr)), o.prometheus);
  if (o.check) return run_check_mode(config, views, x, server, o);
  if (o.prometheus.empty() || o.json) {
    std::string out = o.json ? fleet_json(views, x.pointers) : fleet_text(views, x.pointers);
    std::fputs(out.c_str(), stdout);
  }
  int code = unreadable_code(spec, views);
  if (code != kExitSuccess) return code;
  return x.problems ? outcome_code(exit_codes("archive-info"), "problems") : kExitSuccess;
}

bool has_flag(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == flag) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Show the backups, WAL (per timeline, with gaps), timeline history and recovery window of every\n"
               "configured repository (or the one --repo names), what each is owed and how far it lags behind\n"
               "the others. --verify reads every object and checks digests, authentication tags, every\n"
               "backed-up file and WAL continuity; it exits 1 when it finds a problem. --targets lists what\n"
               "one can recover to: named restore points and the commit-time range per timeline. --check and\n"
               "--prometheus are for monitoring (README, Monitoring).",
               "archive-info"};
  Options o;
  add_options(app, o);
  ToolSpec spec = tool_spec("archive-info");
  // Nagios reads any error of the check itself (bad flag, bad config) as unknown (3), with its summary
  // line on stdout (the error is logged to stderr as well).
  if (has_flag(argc, argv, "--check")) {
    spec = notifying(spec);  // [notify]: a check that is not ok is an event
    spec.exit_code = [](const Error& e) {
      std::printf("PGVAULT UNKNOWN - %s\n", e.what());
      return static_cast<int>(Severity::Unknown);
    };
  }
  return run_tool(spec, app, argc, argv, [&] { return run(spec, o); });
}
