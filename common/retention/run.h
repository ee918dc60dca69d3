// One retention-prune run over a repository: the lock (one run per repository, kept fresh while the
// run lasts, checked before every deleting step), the plan, the deletion, and what is printed. Also the
// test-only environment of retention-prune (never set in production):
//   PGVAULT_TEST_NOW=<unix seconds>          the clock used for the policy, the grace period and the lock
//   PGVAULT_TEST_CRASH_AFTER=<step>          _exit(9) right after the first executor step of that name
//                                            ("manifest-delete", "bundles-delete", "wal-delete")
//   PGVAULT_TEST_TAKEOVER_AFTER=<step>       right after that step, another holder's record replaces the
//                                            lock object, as a concurrent run taking the lock over would
#pragma once

#include <cstdint>
#include <string>

#include "common/repo/repo.h"
#include "common/retention/retention.h"

namespace pgvault {

struct PruneOptions {
  bool dry_run = false;             // plan and print only; no lock is taken
  bool json = false;                // print the plan (and the result) as JSON
  std::int64_t stale_after = 3600;  // seconds a lock may go unrefreshed before another run takes it over
  std::int64_t now = 0;             // the clock (retention_clock())
};

// The clock: PGVAULT_TEST_NOW when set, else the time. Throws Config when the variable is not a number.
std::int64_t retention_clock();

// --stale-lock-timeout in seconds. Throws Config for a duration that does not parse or is not positive.
std::int64_t stale_lock_timeout(const std::string& text);

// Runs retention over `repo` (which must exist: call require_initialised() first, so that no lock is
// written at a mistyped location) and returns what retention-prune prints on stdout. Unless dry_run,
// takes the lock "retention" first and keeps it fresh every third of stale_after; a run that loses it
// stops deleting at once (Conflict).
std::string run_retention_prune(Repository& repo, const RetentionPolicy& policy, const PruneOptions& opts);

}  // namespace pgvault
