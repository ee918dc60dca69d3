#include "common/cli/exit_codes.h"

#include <algorithm>
#include <string>

namespace pgvault {

namespace {

using K = ErrorKind;

// wal-fetch's codes: PostgreSQL ends archive recovery on 1; above 125 it stops recovery with a FATAL
// error (126 and 127 would read as "command not executable" or "not found", hence 200).
constexpr int kFetchMissing = 1;
constexpr int kFetchAbortRecovery = 200;

std::vector<ToolExitCodes> build_tables() {
  return {
      {"repo-init",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::Auth, 5}, {K::Corruption, 6}},
       1, -1, {}},
      // Never above 125: PostgreSQL treats that as fatal to the archiver. Every non-zero code makes
      // PostgreSQL keep the file and retry later.
      {"wal-push",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::NotInitialised, 2}, {K::Duplicate, 3}, {K::Foreign, 4},
        {K::Auth, 5}, {K::Corruption, 6}},
       1, -1, {}},
      // Every failure other than "missing" is treated alike; the log line says which.
      {"wal-fetch", {}, kFetchAbortRecovery, kFetchMissing, {{"missing", kFetchMissing}}},
      {"base-push",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::NotInitialised, 2}, {K::Conflict, 3}, {K::Duplicate, 3},
        {K::Foreign, 4}, {K::Auth, 5}, {K::Corruption, 6}, {K::Interrupted, 130}},
       1, -1, {}},
      // NotFound: no such backup, or the source lacks WAL a backup needs; Duplicate: the destination holds
      // a WAL file with other content; Conflict: a backup's label is another backup's at the destination.
      {"backup-copy",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::NotInitialised, 2}, {K::NotFound, 3}, {K::Duplicate, 3},
        {K::Conflict, 3},
        {K::Foreign, 4}, {K::Auth, 5}, {K::Corruption, 6}, {K::Interrupted, 130}},
       1, -1, {}},
      // NotFound: no usable backup, or WAL the recovery needs is missing (nothing written);
      // NotInitialised: no repository at all there.
      {"pitr-prepare",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::NotFound, 3}, {K::NotInitialised, 3}, {K::Auth, 5},
        {K::Corruption, 6}, {K::Interrupted, 130}},
       1, -1, {}},
      // Any other kind: no repository there, or it could not be listed or read: no verdict.
      {"archive-info",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::Auth, 5}},
       3, -1, {{"problems", 1}}},
      {"retention-prune",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::NotInitialised, 2}, {K::Conflict, 3}, {K::Auth, 5},
        {K::Corruption, 6}, {K::Interrupted, 130}},
       1, -1, {}},
      // A drill's verdict is an outcome (the report names the reason); errors are what stops it
      // before a verdict: the command line, the configuration, no repository, the storage.
      {"restore-drill",
       {{K::InvalidInput, 2}, {K::Config, 2}, {K::NotInitialised, 2}, {K::Interrupted, 130}},
       1, -1, {{"restore-failed", 3}, {"server-failed", 4}, {"check-failed", 5}}},
  };
}

}  // namespace

const std::vector<ToolExitCodes>& exit_code_tables() {
  static const std::vector<ToolExitCodes> tables = build_tables();
  return tables;
}

const ToolExitCodes& exit_codes(std::string_view tool) {
  for (const auto& t : exit_code_tables()) {
    if (t.tool == tool) return t;
  }
  throw Error(ErrorKind::Internal, "no exit-code table for tool " + std::string(tool));
}

int exit_code(const ToolExitCodes& table, ErrorKind kind, bool standby) {
  if (standby && table.standby >= 0) return table.standby;
  for (const auto& [k, code] : table.kinds) {
    if (k == kind) return code;
  }
  return table.other;
}

int outcome_code(const ToolExitCodes& table, std::string_view outcome) {
  for (const auto& [name, code] : table.outcomes) {
    if (name == outcome) return code;
  }
  throw Error(ErrorKind::Internal, "no outcome " + std::string(outcome) + " for tool " + std::string(table.tool));
}

std::vector<int> all_exit_codes(const ToolExitCodes& table) {
  std::vector<int> codes = {kExitSuccess, table.other};
  if (table.standby >= 0) codes.push_back(table.standby);
  for (const auto& [_, code] : table.kinds) codes.push_back(code);
  for (const auto& [_, code] : table.outcomes) codes.push_back(code);
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
  return codes;
}

}  // namespace pgvault
