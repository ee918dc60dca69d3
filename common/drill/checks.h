// Inside the drill library: the checks run against the restored server (drill.h step 4).
#pragma once

#include <string>
#include <vector>

#include "common/drill/drill.h"
#include "common/drill/server.h"

namespace pgvault::drill_detail {

// The statements of opts.sql_file (none without one), read before anything is restored so that a bad
// file fails at once. Throws InvalidInput naming an unreadable or empty file.
std::vector<std::string> load_sql_checks(const DrillOptions& opts);

// Every check, in order: the database list, each database (connects, pg_class readable), each count,
// each SQL statement (must return true). A failed check is recorded, not thrown (only Interrupted is).
std::vector<DrillCheckResult> run_checks(Server& server, const DrillOptions& opts, const std::vector<std::string>& sql);

}  // namespace pgvault::drill_detail
