// Notifications ([notify] in conf/pgvault.toml): after a run of a tool that opts in (notifying() in
// cli.h: base-push, retention-prune, backup-copy, restore-drill, archive-info --check), run_tool runs
// [notify] command through /bin/sh -c when the run failed (exit code not 0), or after every run with
// on = "always". The event is one JSON object on the command's stdin:
//   {"tool", "event": "failure"|"success", "exit_code", "error_kind" ("" on success), "message",
//    "repository" (name and location), "backup" (label when known, else ""), "host", "pid", "time"}
// and the environment adds PGVAULT_EVENT, PGVAULT_TOOL, PGVAULT_EXIT_CODE and PGVAULT_MESSAGE.
// The command's stdout and stderr go to the log (info lines; warnings when it fails). A notifier that
// fails, cannot start or outlives [notify] timeout (killed, with its process group) is a warning and never
// changes the tool's exit code. wal-push and wal-fetch never notify: they run once per segment, and
// PostgreSQL's own log and pg_stat_archiver report their failures (archive-info --check watches those).
// A configuration that cannot be loaded cannot say where to notify: such a run is not notified.
#pragma once

#include <string>

#include "common/config/config.h"

namespace pgvault {

struct NotifyEvent {
  std::string tool;
  std::string event;       // "failure" | "success"
  int exit_code = 0;
  std::string error_kind;  // kind_name() of the error, "" when none
  std::string message;
  std::string repository;  // "primary (/var/lib/pgvault/repo)"
  std::string backup;      // label, when the tool knows it
  std::string host;
  long pid = 0;
  std::string time;        // ISO 8601 UTC
};

std::string notify_event_json(const NotifyEvent& ev);

// What the tools tell the hook as they run (one run per process).
void notify_remember_config(const Config& config);  // load_tool_config calls it
void notify_set_backup(const std::string& label);   // a tool that knows the backup it works on

// Fills and sends the event of a finished run when the remembered [notify] asks for it. Never throws.
void notify_run_end(const std::string& tool, int exit_code, const std::string& error_kind, const std::string& message);

// Runs `command` with `event` (the JSON) on stdin and the environment above, waiting at most `timeout`
// seconds. Returns "" when it exited 0, else why not (for the warning). Never throws.
std::string run_notifier(const std::string& command, const NotifyEvent& event, std::int64_t timeout);

}  // namespace pgvault
