// archive-info: the inventory as text (inventory_text.cpp) or JSON (inventory_json.cpp), with the result of
// --verify (verify.h) when there is one.
//
// JSON (--json) is one object; keys are stable (new keys may be added, none renamed or removed).
// (With several repositories, archive-info prints one such object per repository: fleet_report.h.)
// LSNs are strings "X/Y", times ISO 8601 UTC strings, sizes integers in bytes:
// {
//   "repository": "fs:/var/lib/pgvault/repo",
//   "identity": {"system_identifier": "7301...", "pg_version": 15, "wal_segment_size": 16777216} | null,
//   "backups": [{"label", "type", "parent", "incremental_mode", "chain", "chain_complete", "chain_problem",
//                "timeline", "start_time", "stop_time", "duration_seconds", "start_lsn",
//                "stop_lsn", "start_wal", "stop_wal", "size_bytes", "stored_bytes", "files", "pg_version",
//                "tablespaces"}],                                     oldest first
//                                   parent: "" for a full backup; incremental_mode: "server" | "client" | "";
//                                   chain: the labels the backup is restored from, its full backup first
//                                   (those found, when chain_complete is false: chain_problem says why)
//   "incomplete_backups": [{"label", "objects", "stored_bytes", "newest_mtime", "error"}],
//                                   error "" = no manifest (unfinished or interrupted); else why unreadable
//   "wal": [{"timeline", "first", "last", "segments", "stored_bytes", "partials",
//            "gaps": [{"first", "last", "segments"}]}],               by timeline; first/last are file names
//   "history": [{"timeline", "key", "parents": [{"timeline", "switchpoint", "reason"}], "error"}],
//   "recovery_window": {"available": bool,
//                       "earliest": {"time", "lsn", "backup"},       end of the oldest usable backup
//                       "latest": {"timeline", "lsn", "segment", "archived_at"}} end of contiguous WAL;
//                                   archived_at is the storage time of that segment ("" when unknown)
//   "targets": null | {                  with --targets: from the WAL index (one GET per segment)
//       "timelines": [{"timeline", "segments", "indexed", "first_commit", "last_commit"}],
//                                   commit/abort record times; null when no indexed segment has one
//       "restore_points": [{"name", "lsn", "time", "timeline"}],    by timeline, then LSN
//       "invalid": [{"segment", "message"}]},                       indexes that could not be used
//                                   times here are PostgreSQL's ("2026-11-30 08:41:07.123456+00"),
//                                   as --target-time accepts them
//   "verify": null | {"objects", "bytes", "problems": [{"key", "kind", "message"}]}
// }
#pragma once

#include <string>

#include "common/repo/inventory.h"
#include "common/report/verify.h"

namespace pgvault {

// `verify` may be null (no --verify), `targets` too (no --targets).
std::string inventory_text(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify, const RecoveryTargets* targets = nullptr);
std::string inventory_json(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify, const RecoveryTargets* targets = nullptr);

}  // namespace pgvault
