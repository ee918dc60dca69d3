// The exit codes of every tool, in one table (docs/EXIT-CODES.md documents the same table; the unit test
// tests/unit/cli/exit_codes_test.cpp checks the two against each other in both directions).
//
// A tool's code for an error depends only on the error's kind: the kinds a tool lists take their code,
// every other kind takes `other`. wal-fetch alone has a second code for every error: on a standby (or
// with [fetch] on_error = "missing") every failure reads as "missing" (1) so the standby falls back to
// streaming; in archive recovery it is 200 (above 125: PostgreSQL aborts recovery). A command line that
// does not parse is an InvalidInput error and takes that kind's code.
//
// Besides errors, a run can end with a result that is not plain success: wal-fetch's "missing" (the file
// is not in the archive) and archive-info's "problems" (--verify found some). Those are the table's
// outcomes, named so the doc check sees them.
#pragma once

#include <initializer_list>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/errors.h"

namespace pgvault {

inline constexpr int kExitSuccess = 0;

struct ToolExitCodes {
  std::string_view tool;
  std::vector<std::pair<ErrorKind, int>> kinds;  // the kinds with their own code
  int other = 1;                                 // every kind not listed in `kinds`
  int standby = -1;                              // wal-fetch: every error on a standby; -1 = no such rule
  std::vector<std::pair<std::string_view, int>> outcomes;  // results other than success ("missing", ...)
};

// Every tool's table, in the order of docs/EXIT-CODES.md.
const std::vector<ToolExitCodes>& exit_code_tables();

// The table of `tool`; an unknown name is an Internal error (a tool main naming itself wrongly).
const ToolExitCodes& exit_codes(std::string_view tool);

// The code for an error of `kind`; `standby` selects wal-fetch's standby rule (ignored by other tools).
int exit_code(const ToolExitCodes& table, ErrorKind kind, bool standby = false);

// The code of a named outcome of the tool ("missing", "problems"); an unknown one is an Internal error.
int outcome_code(const ToolExitCodes& table, std::string_view outcome);

// Every code the tool can exit with (success, outcomes, error codes), sorted and unique.
std::vector<int> all_exit_codes(const ToolExitCodes& table);

}  // namespace pgvault
