// archive-info --prometheus: the repositories (fleet.h) and the server's archiver (server_status.h) as
// Prometheus text format 0.0.4, for node_exporter's textfile collector. Every repository's samples carry
// repository="NAME". Exported:
//   pgvault_repository_up                          1 when the repository was read, 0 when it could not be
//   pgvault_backups{type="full"|"incremental"}     complete backups
//   pgvault_backups_incomplete                     backup folders without a usable manifest
//   pgvault_backups_stored_bytes                   repository bytes of the complete backups
//   pgvault_backup_newest_timestamp_seconds        stop time of the newest complete backup
//   pgvault_backup_newest_age_seconds              now minus that
//   pgvault_backup_newest_size_bytes               its database bytes
//   pgvault_backup_newest_stored_bytes             its repository bytes
//   pgvault_backup_newest_duration_seconds         its stop minus start time
//   pgvault_wal_segments                           archived segments (all timelines, .partial excluded)
//   pgvault_wal_stored_bytes                       repository bytes of the WAL (segments and .partial)
//   pgvault_wal_gap_segments                       segments missing inside the recovery window
//   pgvault_wal_newest_timestamp_seconds           storage time of the newest archived segment
//   pgvault_wal_lag_segments                       segments behind the most advanced repository
//   pgvault_recovery_window_start_timestamp_seconds  the oldest backup's stop time
//   pgvault_recovery_window_end_timestamp_seconds    storage time of the last contiguous segment
//   pgvault_owed_segments                          WAL files owed to the repository (repo/owed.h)
//   pgvault_owed_oldest_age_seconds                age of the oldest owed one (0 when none)
// and, from this machine's local state (repo/wal_state.h; also for a repository that cannot be read; left
// out when nothing was recorded):
//   pgvault_verify_last_timestamp_seconds / pgvault_verify_age_seconds  when the last --verify finished
//   pgvault_verify_last_ok                         1 when it found no problem, else 0
//   pgvault_verify_last_problems                   problems it found
//   pgvault_wal_archived_total / _archived_bytes_total  files (and their bytes) wal-push archived (counter)
//   pgvault_wal_push_failures_total{kind=...}      failed wal-push calls by error kind (every kind, 0 too)
//   pgvault_wal_fetched_total / _fetched_bytes_total    files (and bytes) wal-fetch restored (counter)
//   pgvault_wal_fetch_missing_total                wal-fetch answers "not in the archive" (counter)
//   pgvault_wal_fetch_failures_total{kind=...}     failed wal-fetch calls by error kind
// and, when [backup] conninfo is set (no repository label):
//   pgvault_server_up                              1 when pg_stat_archiver could be read
//   pgvault_archiver_archived_total / _failed_total  pg_stat_archiver's counters (counter)
//   pgvault_archiver_last_archived_timestamp_seconds / _last_failed_timestamp_seconds
//   pgvault_archiver_ready_files                   WAL files waiting for archive_command
// plus pgvault_scrape_timestamp_seconds (when the file was written). A sample whose value is unknown
// (e.g. no backup yet) is left out rather than written as 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/report/fleet.h"
#include "common/report/server_status.h"

namespace pgvault {

std::string prometheus_text(const std::vector<RepositoryView>& views, const std::optional<ServerStatus>& server,
                            std::int64_t now);

// Writes `text` to `path` atomically (temp file in the same folder + rename, mode 0644 so the collector
// can read it), or to stdout when path is "-".
void write_metrics_file(const std::string& text, const std::string& path);

}  // namespace pgvault
