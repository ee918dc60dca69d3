// archive-info without --repo: every repository (fleet.h), as text or JSON.
//
// JSON: with one repository configured (or one chosen with --repo) the object of inventory_report.h,
// with three keys added: "name", "owed" {"segments", "oldest_since" (ISO 8601 or null), "error"} and
// "lag" {"newest_segment", "segments_behind", "seconds_behind"}. With several repositories:
//   {"repositories": [ that object per repository, in configured order ]}
// A repository that cannot be read is {"name", "repository", "error", "error_kind"} in that array (with
// one repository, the tool fails as before instead). "seconds_behind" compares the storage times of the
// newest archived segments (0 for the most advanced repository; null when a time is unknown).
#pragma once

#include <string>
#include <vector>

#include "common/report/fleet.h"
#include "common/report/verify.h"

namespace pgvault {

// What --verify / --targets produced for one repository (both may be null).
struct FleetExtras {
  const VerifyReport* verify = nullptr;
  const RecoveryTargets* targets = nullptr;
};

// `extras` holds one entry per view (or is empty).
std::string fleet_text(const std::vector<RepositoryView>& views, const std::vector<FleetExtras>& extras);
std::string fleet_json(const std::vector<RepositoryView>& views, const std::vector<FleetExtras>& extras);

}  // namespace pgvault
