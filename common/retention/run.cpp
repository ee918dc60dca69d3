#include "common/retention/run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <optional>
#include <string_view>

#include "common/base/errors.h"
#include "common/config/config.h"
#include "common/repo/lock.h"

namespace pgvault {

namespace {

// The executor's test hook from PGVAULT_TEST_CRASH_AFTER and PGVAULT_TEST_TAKEOVER_AFTER (none when unset).
std::function<void(std::string_view)> test_hook(Storage& storage, const std::string& lock_key, std::int64_t now) {
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
      write_all(storage, lock_key, as_bytes(rec));
    }
  };
}

// Takes the lock of a real run into `lock` and keeps it fresh: a long run (many deletes on a slow store)
// must not look stale to the next retention-prune. (Refreshing starts on the lock in its final place.)
void take_lock(std::optional<RepositoryLock>& lock, Repository& repo, const PruneOptions& opts) {
  lock.emplace(RepositoryLock::acquire(repo.storage(), "retention", {"retention-prune", opts.stale_after, opts.now}));
  lock->keep_fresh(std::chrono::seconds(std::max<std::int64_t>(1, opts.stale_after / 3)));
}

}  // namespace

std::int64_t retention_clock() {
  if (const char* t = std::getenv("PGVAULT_TEST_NOW"); t && *t) {
    char* end = nullptr;
    long long v = std::strtoll(t, &end, 10);
    if (*end != '\0') throw Error(ErrorKind::Config, "PGVAULT_TEST_NOW must be unix seconds");
    return v;
  }
  return static_cast<std::int64_t>(std::time(nullptr));
}

std::int64_t stale_lock_timeout(const std::string& text) {
  std::int64_t seconds = parse_duration(text, "--stale-lock-timeout");
  if (seconds <= 0) throw Error(ErrorKind::Config, "--stale-lock-timeout must be positive");
  return seconds;
}

std::string run_retention_prune(Repository& repo, const RetentionPolicy& policy, const PruneOptions& opts) {
  std::optional<RepositoryLock> lock;
  if (!opts.dry_run) take_lock(lock, repo, opts);
  Inventory inv = load_inventory(repo);
  RetentionPlan plan = plan_retention(inv, policy, opts.now, scan_retention_extras(repo));
  if (opts.dry_run) {
    return opts.json ? retention_plan_json(repo.describe(), plan, true, nullptr)
                     : retention_plan_text(repo.describe(), plan);
  }
  RetentionExecOptions exec;
  exec.hook = test_hook(repo.storage(), lock->key(), opts.now);
  // A run whose lock was taken over or could not be refreshed stops deleting at once (Conflict).
  exec.check = [&lock] { lock->check(); };
  RetentionResult result = execute_retention(repo, plan, exec);
  lock->release();
  return opts.json ? retention_plan_json(repo.describe(), plan, false, &result)
                   : retention_summary_line(plan, result);
}

}  // namespace pgvault
