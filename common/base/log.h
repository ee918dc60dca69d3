// Logging: spdlog to stderr, one line per event: "2026-11-21 16:30:00.123 wal-push[4242] ERROR: ...".
// PostgreSQL copies archive_command/restore_command stderr into the server log, so every line names
// the tool and pid. Never log a secret.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace pgvault {

// Call once at the start of main(). Level from $PGVAULT_LOG_LEVEL if set, else "info".
void init_logging(std::string_view tool);
// Changes the level ("debug", "info", "warning", "error"); unknown names leave it unchanged.
void set_log_level(const std::string& level);

}  // namespace pgvault
