// The restore drill (tool restore-drill): restore a backup into a temporary data directory, start
// PostgreSQL on it with archiving off, wait for recovery to end, run checks, stop the server, remove the
// directory, and report the measured RTO and the RPO the repository offers.
//
// Steps (drill.cpp), and what is left behind when one fails: nothing. The work directory (mode 0700;
// the data directory and the server's Unix socket are inside it) is removed on every path, also after
// SIGINT/SIGTERM (the signal is noted and the drill stops at its next wait), and a server the drill
// started is stopped by its PID: SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL.
//  1. restore (run_restore of common/restore/restore.h, with the given target; archive_mode = off);
//  2. start `postgres` (from bin_dir, else /usr/lib/postgresql/<backup's major>/bin) listening on a Unix
//     socket in the work directory only (listen_addresses = ''), port chosen free unless configured,
//     archive_mode off, trust authentication for local connections (the socket's directory is 0700); as
//     root the server runs as the `postgres` user, who then owns the work directory;
//  3. wait until pg_is_in_recovery() is false (recovery ended or the target was reached and promoted);
//  4. checks: every database that allows connections connects and pg_class is readable in it; each
//     counted table's rows are counted; each query of the SQL file returns true.
// A failure of a step is the drill's verdict (DrillFailure), not an error: the report names it.
// Errors that are not a verdict (bad options, no repository) throw as usual.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/repo/repo.h"
#include "common/restore/restore.h"

namespace pgvault {

// A table to count: --count db.schema.table.
struct CountSpec {
  std::string database;
  std::string schema;
  std::string table;
  std::string name() const { return database + "." + schema + "." + table; }
};

// "db.schema.table" (exactly three non-empty dot-separated parts). Throws InvalidInput naming it.
CountSpec parse_count_spec(const std::string& text);
// A comma- or blank-separated list of specs ([drill] counts); empty entries are skipped.
std::vector<CountSpec> parse_count_list(const std::string& text);
// The statements of an SQL file: split at ';' outside quotes ('...', "...", $$...$$) and comments
// (-- and /* */); comments before a statement and blank statements are dropped.
std::vector<std::string> split_sql(const std::string& text);

struct DrillOptions {
  RestoreOptions restore;          // backup, target; pgdata is set by the drill
  std::string bin_dir;             // "" = /usr/lib/postgresql/<major>/bin
  std::string work_dir;            // "" = a new directory under $TMPDIR (or /var/tmp)
  int port = 0;                    // 0 = a free one
  std::vector<CountSpec> counts;
  std::string sql_file;            // "" = none
  std::string sql_database = "postgres";
  int timeout = 1800;              // seconds for the server to start and recovery to end
};

enum class DrillFailure { None, Restore, Server, Check };
// "restore-failed", "server-failed", "check-failed" ("" for None): the tool's outcome names.
std::string failure_name(DrillFailure f);

struct DrillCheckResult {
  std::string name;     // "connect postgres", "pg_class appdb", "count appdb.public.t", "sql #2"
  bool ok = false;
  std::string detail;   // rows counted, the query, or the error
};

struct DrillReport {
  DrillFailure failure = DrillFailure::None;
  std::string reason;                  // one line naming what failed ("" on success)
  std::string backup;                  // the label restored
  int pg_version = 0;                  // the backup's PostgreSQL major version
  std::uint64_t backup_bytes = 0;      // database bytes of the backup
  std::uint64_t stored_bytes = 0;      // its bytes in the repository
  std::uint64_t restored_bytes = 0;    // bytes written by the restore
  double restore_seconds = 0;
  double recovery_seconds = 0;         // server start until recovery ended
  std::optional<double> rpo_seconds;   // now - the newest archived WAL segment's object time
  std::string newest_wal;              // that segment's name
  std::vector<DrillCheckResult> checks;
  std::string work_dir;                // where it ran (removed)
  std::int64_t finished_at = 0;        // seconds since the epoch
  bool passed() const { return failure == DrillFailure::None; }
  double rto_seconds() const { return restore_seconds + recovery_seconds; }
};

// The whole drill; the report says pass or fail. Throws for errors before the restore (InvalidInput,
// Config, NotInitialised, storage kinds) and Interrupted after cleaning up.
DrillReport run_drill(Repository& repo, const DrillOptions& opts);

// RPO from the inventory's newest archived segment (by object time) at `now`.
void fill_rpo(DrillReport& report, const Inventory& inv, std::int64_t now);

std::string drill_text(const DrillReport& r);
std::string drill_json(const DrillReport& r);
// Gauges pgvault_drill_* in the Prometheus text format.
std::string drill_prometheus(const DrillReport& r);

// SIGINT/SIGTERM set a flag the drill checks at each step and wait (call once, early in main()).
void install_drill_signal_handlers();

}  // namespace pgvault
