// retention-prune: delete the backups and WAL the retention policy no longer needs. Exit codes:
// docs/EXIT-CODES.md.
//
// Test-only environment (never set in production):
//   PGVAULT_TEST_NOW=<unix seconds>          the clock used for the policy, the grace period and the lock
//   PGVAULT_TEST_CRASH_AFTER=<step>          _exit(9) right after the first executor step of that name
//                                            ("manifest-delete", "bundles-delete", "wal-delete")
//   PGVAULT_TEST_TAKEOVER_AFTER=<step>       right after that step, another holder's record replaces the
//                                            lock object, as a concurrent run taking the lock over would
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "common/cli/cli.h"
#include "common/repo/lock.h"
#include "common/retention/retention.h"

namespace {

int exit_code(const pgvault::Error& e) {
  using K = pgvault::ErrorKind;
  switch (e.kind()) {
    case K::InvalidInput:
    case K::Config:
    case K::NotInitialised: return 2;
    case K::Conflict: return 3;
    case K::Auth: return 5;
    case K::Corruption: return 6;
    case K::Interrupted: return 130;
    default: return 1;
  }
}

std::int64_t clock_now() {
  if (const char* t = std::getenv("PGVAULT_TEST_NOW"); t && *t) {
    char* end = nullptr;
    long long v = std::strtoll(t, &end, 10);
    if (*end != '\0') throw pgvault::Error(pgvault::ErrorKind::Config, "PGVAULT_TEST_NOW must be unix seconds");
    return v;
  }
  return static_cast<std::int64_t>(std::time(nullptr));
}

// The executor's test hook from PGVAULT_TEST_CRASH_AFTER and PGVAULT_TEST_TAKEOVER_AFTER (none when unset).
std::function<void(std::string_view)> test_hook(pgvault::Storage& storage, const std::string& lock_key,
                                                std::int64_t now) {
  const char* crash = std::getenv("PGVAULT_TEST_CRASH_AFTER");
  const char* takeover = std::getenv("PGVAULT_TEST_TAKEOVER_AFTER");
  if ((!crash || !*crash) && (!takeover || !*takeover)) return {};
  return [&storage, lock_key, now, crash = std::string(crash ? crash : ""),
          takeover = std::string(takeover ? takeover : "")](std::string_view at) {
    if (at == crash) {
      std::fflush(nullptr);
      ::_exit(9);
    }
    if (at == takeover && !lock_key.empty()) {
      std::string rec = "{\"tool\": \"retention-prune\", \"host\": \"test-takeover\", \"pid\": 1, \"time\": " +
                        std::to_string(now) + ", \"token\": \"test-takeover\"}\n";
      pgvault::write_all(storage, lock_key, pgvault::as_bytes(rec));
    }
  };
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Delete the backups and WAL that the [retention] policy no longer needs, and garbage-collect\n"
               "incomplete backups and leftover temporary files. One run at a time per repository.",
               "retention-prune"};
  pgvault::CommonOptions common;
  bool dry_run = false, json = false;
  std::optional<std::string> full, window, min_full, grace;
  std::string stale = "1h";
  app.add_flag("--dry-run", dry_run, "print the plan; delete nothing");
  app.add_flag("--json", json, "print the plan (and, after a run, the result) as JSON on stdout");
  app.add_option("--full-backups", full, "keep the newest N full backups (overrides [retention] full_backups)")
      ->type_name("N");
  app.add_option("--window", window, "keep what recovers to any point this far back, e.g. 30d (\"\" = off)")
      ->type_name("DURATION");
  app.add_option("--min-full-backups", min_full, "never fewer full backups than this")->type_name("N");
  app.add_option("--incomplete-grace", grace, "incomplete backups older than this are deleted (default 24h)")
      ->type_name("DURATION");
  app.add_option("--stale-lock-timeout", stale, "take over a lock not refreshed for this long (default 1h; a running prune refreshes its lock every third of it)")
      ->type_name("DURATION");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool({"retention-prune", exit_code}, app, argc, argv, [&] {
    if (full) common.set.push_back("retention.full_backups=" + *full);
    if (window) common.set.push_back("retention.window=" + *window);
    if (min_full) common.set.push_back("retention.min_full_backups=" + *min_full);
    if (grace) common.set.push_back("retention.incomplete_grace=" + *grace);
    pgvault::Config config = pgvault::load_tool_config(common);
    pgvault::RetentionPolicy policy = pgvault::retention_policy(config);
    std::int64_t stale_after = pgvault::parse_duration(stale, "--stale-lock-timeout");
    if (stale_after <= 0) throw pgvault::Error(pgvault::ErrorKind::Config, "--stale-lock-timeout must be positive");
    const std::int64_t now = clock_now();

    pgvault::Repository repo(pgvault::open_storage(config), config);
    repo.require_initialised();  // a mistyped path or bucket: no lock object is written there
    std::optional<pgvault::RepositoryLock> lock;
    if (!dry_run) {
      lock.emplace(pgvault::RepositoryLock::acquire(repo.storage(), "retention",
                                                    {"retention-prune", stale_after, now}));
      // A long run (many deletes on a slow store) must not look stale to the next retention-prune.
      lock->keep_fresh(std::chrono::seconds(std::max<std::int64_t>(1, stale_after / 3)));
    }
    pgvault::Inventory inv = pgvault::load_inventory(repo);
    pgvault::RetentionPlan plan = pgvault::plan_retention(inv, policy, now, pgvault::scan_retention_extras(repo));
    if (dry_run) {
      std::string out = json ? pgvault::retention_plan_json(repo.describe(), plan, true, nullptr)
                             : pgvault::retention_plan_text(repo.describe(), plan);
      std::fputs(out.c_str(), stdout);
      return 0;
    }
    pgvault::RetentionExecOptions opts;
    opts.hook = test_hook(repo.storage(), lock ? lock->key() : std::string(), now);
    // A run whose lock was taken over or could not be refreshed stops deleting at once (Conflict).
    if (lock) opts.check = [&lock] { lock->check(); };
    pgvault::RetentionResult result = pgvault::execute_retention(repo, plan, opts);
    if (lock) lock->release();
    std::string out = json ? pgvault::retention_plan_json(repo.describe(), plan, false, &result)
                           : pgvault::retention_summary_line(plan, result);
    std::fputs(out.c_str(), stdout);
    return 0;
  });
}
