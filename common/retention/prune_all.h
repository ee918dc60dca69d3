// retention-prune over several repositories: each with its own policy (Config::repositories, narrowed by
// repository_configs), one report each. A failure in one repository is logged and reported, and the
// others are still pruned; the caller turns the failures into the exit code.
//
// Output: with one repository (one configured, or --repo) exactly run_retention_prune's; with several,
// text: each report after a line "repository NAME:" (a failure as "repository NAME: failed: <error>"),
// JSON: {"repositories": [{"name": N, "ok": true, "report": <run_retention_prune's JSON object>} or
// {"name": N, "ok": false, "error": "<one line>", "error_kind": "<kind>"}]}, in configured order.
#pragma once

#include <string>
#include <vector>

#include "common/base/errors.h"
#include "common/config/config.h"
#include "common/retention/run.h"

namespace pgvault {

struct PruneFailure {
  std::string repository;
  Error error;
};

// Prunes every repository of `configs` (each narrowed to one repository) in order. Returns what
// retention-prune prints; `failures` receives the repositories that failed, in order.
std::string prune_repositories(const std::vector<Config>& configs, const PruneOptions& opts,
                               std::vector<PruneFailure>& failures);

// The error retention-prune ends with after `failures` (non-empty): the first failure's kind (its exit
// code), naming every failed repository.
Error prune_failures_error(const std::vector<PruneFailure>& failures);

}  // namespace pgvault
