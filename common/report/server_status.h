// What the PostgreSQL server says about its WAL archiving, for archive-info --check and --prometheus:
// pg_stat_archiver and the archive_status backlog (.ready files: WAL waiting for archive_command).
// Read over an ordinary SQL connection ([backup] conninfo); the role needs pg_monitor (or superuser) for
// pg_ls_archive_statusdir().
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pgvault {

struct ServerStatus {
  bool connected = false;
  std::string error;                              // why it could not be read ("" when connected)
  std::int64_t archived_count = 0;                // pg_stat_archiver since its last reset
  std::string last_archived_wal;
  std::optional<std::int64_t> last_archived_time; // Unix seconds
  std::int64_t failed_count = 0;
  std::string last_failed_wal;
  std::optional<std::int64_t> last_failed_time;
  std::optional<std::int64_t> ready_count;        // .ready files (nullopt: the server would not say)
  std::optional<std::int64_t> oldest_ready_time;  // modification time of the oldest one
  std::string ready_error;                        // why ready_count is unknown
};

// Connects with `conninfo` (libpq keywords or URI; a connect_timeout of 10 s unless it sets one), reads
// the archiver's state and disconnects. Never throws: failures are in `error`.
ServerStatus read_server_status(const std::string& conninfo);

}  // namespace pgvault
