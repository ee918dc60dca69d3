// What pitr-prepare does around run_restore (restore.h): its recovery target and tablespace flags
// checked and converted, the restore_command it writes, and what it prints after a run.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/config/config.h"
#include "common/restore/restore.h"

namespace pgvault {

// The recovery target flags as given; the command line lets at most one be set.
struct TargetFlags {
  std::optional<std::string> time;     // --target-time
  std::optional<std::string> lsn;      // --target-lsn
  std::optional<std::string> xid;      // --target-xid
  std::optional<std::string> name;     // --target-name
  std::optional<std::string> special;  // --target: "immediate" or "latest"
};

// The target the flags name (latest when none is set). Throws InvalidInput naming the flag: a time
// without a zone, a bad LSN, an xid that is not digits, an empty restore point name.
RecoveryTarget recovery_target_from_flags(const TargetFlags& flags);

// --tablespace-map entries "OLD=NEW" as (OLD, NEW) pairs. Throws InvalidInput naming a malformed entry.
std::vector<std::pair<std::string, std::string>> parse_tablespace_map(const std::vector<std::string>& entries);

// restore_command for the restored server: `wal_fetch` with the same configuration file (made absolute;
// none when the defaults applied) and the same --set overrides as this run. Without --repo (`repo`
// unset) wal-fetch gets no --repo either and reads every configured repository in order, so WAL a
// lagging or unreachable repository lacks still comes from another; with --repo NAME (the operator
// chose that repository, often because another one is lost or down) it reads that one only, the one
// whose WAL pitr-prepare checked, and never waits on the others' retries.
std::string restore_command_for(const std::string& wal_fetch, const Config& config,
                                const std::vector<std::string>& sets,
                                const std::optional<std::string>& repo = std::nullopt);

// What pitr-prepare prints after `run_restore`: with `json` the summary line on the log and the JSON on
// stdout; with --dry-run the summary and the settings for postgresql.auto.conf; else the summary and
// the command that starts the server.
void print_restore_result(const RestoreResult& result, const RestoreOptions& opts, bool json);

}  // namespace pgvault
