// run_drill (drill.h): the steps in order, each failure a verdict, cleanup on every path.
#include <algorithm>
#include <chrono>
#include <ctime>

#include <spdlog/spdlog.h>

#include "common/drill/checks.h"
#include "common/drill/drill.h"
#include "common/drill/server.h"
#include "common/repo/inventory.h"

namespace pgvault {

namespace {

using namespace drill_detail;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A step's failure: the verdict and its one-line reason.
struct StepFailed {
  DrillFailure failure;
  std::string reason;
};

// Runs `step`; an Error (other than Interrupted) becomes the verdict `failure`.
template <typename Step>
void step(DrillFailure failure, const std::string& what, Step body) {
  try {
    body();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Interrupted) throw;
    throw StepFailed{failure, what + ": " + e.what()};
  }
}

void restore_step(Repository& repo, const DrillOptions& opts, const WorkDir& dir, DrillReport& r) {
  RestoreOptions ro = opts.restore;
  ro.pgdata = dir.data();
  ro.archive_mode = "off";
  ro.target_action = "promote";
  ro.standby = false;
  ro.force = false;
  ro.dry_run = false;
  auto t0 = std::chrono::steady_clock::now();
  step(DrillFailure::Restore, "restore failed", [&] {
    RestoreResult res = run_restore(repo, ro);
    r.backup = res.plan.backup.label;
    r.pg_version = res.plan.backup.pg_version;
    r.backup_bytes = res.plan.backup.total_bytes;
    r.stored_bytes = res.plan.backup.stored_bytes;
    r.restored_bytes = res.bytes;
  });
  r.restore_seconds = seconds_since(t0);
  check_interrupt();
  dir.hand_over();
}

void server_and_checks(const DrillOptions& opts, const WorkDir& dir, const ServerUser& user,
                       const std::vector<std::string>& sql, DrillReport& r) {
  std::string binary;
  step(DrillFailure::Server, "server did not start",
       [&] { binary = postgres_binary(opts.bin_dir, r.pg_version); });
  Server server(binary, dir, opts.port > 0 ? opts.port : free_port(), user);
  auto t0 = std::chrono::steady_clock::now();
  step(DrillFailure::Server, "recovery did not finish", [&] {
    server.start();
    server.wait_recovery_end(opts.timeout);
  });
  r.recovery_seconds = seconds_since(t0);
  spdlog::info("recovery ended after {:.1f} s; running checks", r.recovery_seconds);
  r.checks = run_checks(server, opts, sql);
  check_interrupt();  // a signal during the last check: no verdict
  for (const auto& c : r.checks) {
    if (!c.ok) throw StepFailed{DrillFailure::Check, "check failed: " + c.name + ": " + c.detail};
  }
}

}  // namespace

void fill_rpo(DrillReport& report, const Inventory& inv, std::int64_t now) {
  // The newest archived WAL is the one furthest along: the last segment of the highest timeline (the
  // inventory lists both in order). Storage times tie within a second and a late re-push of an old
  // segment touches its time, so they do not pick it.
  const WalObject* newest = nullptr;
  for (const auto& [tli, tl] : inv.wal) {
    if (!tl.segments.empty() && tl.segments.back().mtime > 0) newest = &tl.segments.back();
  }
  if (!newest) return;
  report.newest_wal = newest->name;
  // Never below 0: some stores round Last-Modified up to the next second (Swift), and clocks drift.
  report.rpo_seconds = static_cast<double>(std::max<std::int64_t>(0, now - newest->mtime));
}

DrillReport run_drill(Repository& repo, const DrillOptions& opts) {
  DrillReport r;
  std::vector<std::string> sql = load_sql_checks(opts);
  fill_rpo(r, load_inventory(repo), std::time(nullptr));
  ServerUser user = server_user();
  WorkDir dir(opts.work_dir, user);  // removed on every path out, after the server stopped
  r.work_dir = dir.path();
  try {
    restore_step(repo, opts, dir, r);
    server_and_checks(opts, dir, user, sql, r);
  } catch (const StepFailed& f) {
    r.failure = f.failure;
    r.reason = f.reason;
  }
  r.finished_at = std::time(nullptr);
  return r;
}

}  // namespace pgvault
