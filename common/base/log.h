// Logging: spdlog to stderr, one line per event: "2026-11-21 16:30:00.123 wal-push[4242] ERROR: ...".
// PostgreSQL copies archive_command/restore_command stderr into the server log, so every line names
// the tool and pid. Never log a secret.
//
// Quiet from cron: unless a level is chosen (--verbose, [log] level, PGVAULT_LOG_LEVEL), stderr gets info
// lines only when it is a terminal; otherwise warnings and errors only, so a successful run prints
// nothing and cron mails only failures. An optional log file ([log] file) gets the same lines as
// stderr and, whatever the level, the info lines too.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace pgvault {

// Call once at the start of main(). Level from $PGVAULT_LOG_LEVEL if set, else "info" when stderr is a
// terminal and "warning" when it is not.
void init_logging(std::string_view tool);
// Changes the level ("debug", "info", "warning", "error"); unknown names (and "") leave it unchanged.
void set_log_level(const std::string& level);
// Appends every line at the level or "info" (the more verbose) to `path` too. Config error naming
// `what` when the file cannot be opened.
void add_log_file(const std::string& path, const std::string& what);

}  // namespace pgvault
