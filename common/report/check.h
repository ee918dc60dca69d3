// archive-info --check: health findings with Nagios/Icinga exit codes (0 ok, 1 warning, 2 critical,
// 3 unknown), from the repositories (fleet.h), the server's archiver state (server_status.h) and the
// [check] thresholds (config.h). The rules, each producing at most one finding per repository (or one for
// the server), in this order:
// - backup_age: no complete backup: critical; the newest one's stop time older than backup_age_critical
//   / _warning: critical / warning.
// - archiving (server, when [backup] conninfo is set and it answers): the last failure newer than the last
//   success: critical (archive_command failing); WAL waiting (.ready files) longer than wal_age_critical /
//   _warning (measured from the oldest .ready file, else the last success): critical / warning. Nothing
//   waiting and no failure: no finding however old the newest WAL is (a quiet server without
//   archive_timeout archives nothing). The server cannot be read: warning (then the WAL age rule below
//   applies to the repositories as if no server were configured).
// - wal_age (no server to ask): the newest archived segment's storage time older than wal_age_* ; no
//   segment at all: critical.
// - gaps: segments missing inside the recovery window (fleet.h window_gap_segments): critical.
// - owed: segments owed to a repository at or above owed_critical / owed_warning (0 = off); the queue
//   cannot be read: warning.
// - lag: a repository behind the most advanced one by lag_critical / lag_warning segments or more (0 =
//   off; several repositories only).
// - verify (with --verify): a problem found: critical.
// - verify_age (the last --verify's record, repo/wal_state.h): it found problems: critical (whatever the
//   thresholds: the repository was damaged when last read); it finished longer ago than
//   verify_age_critical / _warning: critical / warning; no record while either threshold is set: warning
//   ("never verified": nothing known to be wrong, but the verification the operator asked for is
//   missing). Both thresholds off (the default) and no record: no finding.
// - unreadable: a repository that cannot be read: unknown.
// The overall status is the worst: critical > unknown > warning > ok.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/report/fleet.h"
#include "common/report/server_status.h"

namespace pgvault {

enum class Severity { Ok = 0, Warning = 1, Critical = 2, Unknown = 3 };
const char* severity_name(Severity s);  // "OK", "WARNING", "CRITICAL", "UNKNOWN"

struct Finding {
  Severity severity = Severity::Ok;
  std::string repository;  // "" for the server
  std::string rule;        // backup_age, archiving, wal_age, gaps, owed, verify, verify_age, lag, unreadable, server
  std::string message;
};

// Thresholds in seconds / segments (0 = the rule is off).
struct CheckThresholds {
  std::int64_t backup_age_warning = 0, backup_age_critical = 0;
  std::int64_t wal_age_warning = 0, wal_age_critical = 0;
  std::uint64_t owed_warning = 0, owed_critical = 0;
  std::uint64_t lag_warning = 0, lag_critical = 0;
  std::int64_t verify_age_warning = 0, verify_age_critical = 0;
};
// From [check]; Config naming the key when a value does not parse.
CheckThresholds check_thresholds(const Config& config);

// What one repository shows the check (taken from a RepositoryView, or written by tests).
struct RepositoryFacts {
  std::string name;
  std::string error;                           // unreadable
  std::optional<std::int64_t> newest_backup;   // stop time of the newest complete backup
  std::string newest_backup_label;
  std::optional<std::int64_t> newest_wal_time; // storage time of the newest archived segment
  bool has_wal = false;
  std::uint64_t gap_segments = 0;
  std::uint64_t owed_segments = 0;
  std::optional<std::int64_t> owed_since;
  std::string owed_error;
  std::uint64_t lag_segments = 0;
  std::optional<std::size_t> verify_problems;  // with --verify: problems found
  std::optional<std::int64_t> last_verify_time;  // the last --verify record: when it finished
  std::uint64_t last_verify_problems = 0;         // and what it found
};
RepositoryFacts repository_facts(const RepositoryView& v);

struct CheckResult {
  Severity status = Severity::Ok;
  std::vector<Finding> findings;  // worst first
};

// `server` is nullopt when no server is configured. `now` in Unix seconds.
CheckResult run_check(const std::vector<RepositoryFacts>& repos, const std::optional<ServerStatus>& server,
                      const CheckThresholds& t, std::int64_t now);

// Nagios output: the summary line ("PGVAULT CRITICAL - 1 critical, 2 warning: <worst finding>" or
// "PGVAULT OK - N repositories healthy"), then one line per finding ("CRITICAL primary: ...").
std::string check_text(const CheckResult& r, std::size_t repositories);
// {"status": "ok"|"warning"|"critical"|"unknown", "code": 0..3, "summary": first text line,
//  "findings": [{"severity", "repository", "rule", "message"}]}
std::string check_json(const CheckResult& r, std::size_t repositories);

}  // namespace pgvault
