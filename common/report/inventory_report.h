// archive-info: the inventory as text or JSON, and the full verification of a repository (--verify).
//
// JSON (--json) is one object; keys are stable (new keys may be added, none renamed or removed).
// LSNs are strings "X/Y", times ISO 8601 UTC strings, sizes integers in bytes:
// {
//   "repository": "fs:/var/lib/pgvault/repo",
//   "identity": {"system_identifier": "7301...", "pg_version": 15, "wal_segment_size": 16777216} | null,
//   "backups": [{"label", "type", "timeline", "start_time", "stop_time", "duration_seconds", "start_lsn",
//                "stop_lsn", "start_wal", "stop_wal", "size_bytes", "stored_bytes", "files", "pg_version",
//                "tablespaces"}],                                     oldest first
//   "incomplete_backups": [{"label", "objects", "stored_bytes", "newest_mtime", "error"}],
//                                   error "" = no manifest (unfinished or interrupted); else why unreadable
//   "wal": [{"timeline", "first", "last", "segments", "stored_bytes", "partials",
//            "gaps": [{"first", "last", "segments"}]}],               by timeline; first/last are file names
//   "history": [{"timeline", "key", "parents": [{"timeline", "switchpoint", "reason"}], "error"}],
//   "recovery_window": {"available": bool,
//                       "earliest": {"time", "lsn", "backup"},       end of the oldest usable backup
//                       "latest": {"timeline", "lsn", "segment", "archived_at"}} end of contiguous WAL;
//                                   archived_at is the storage time of that segment ("" when unknown)
//   "verify": null | {"objects", "bytes", "problems": [{"key", "kind", "message"}]}
// }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/repo/inventory.h"

namespace pgvault {

struct VerifyProblem {
  std::string key;      // the storage key at fault (for missing WAL: the key it should have)
  std::string kind;     // "corruption", "missing", "unreadable", "mismatch"
  std::string message;
};

struct VerifyReport {
  std::uint64_t objects = 0;  // objects read and decoded
  std::uint64_t bytes = 0;    // plaintext bytes verified
  std::vector<VerifyProblem> problems;  // sorted by key
};

struct VerifyOptions {
  int parallel = 0;       // objects read at once; 0 = number of cores
  bool progress = false;  // a progress line on stderr
};

// Reads every object through the decoder (digests, AEAD tags), checks every file of every backup against
// its manifest checksum (CRC-32C; SHA-256 in format 1 manifests), bundle sizes and digests, WAL segment
// headers (system identifier, position), and WAL continuity from each backup's start across timeline
// switches to the end of every timeline that descends from it. Problems are collected, not thrown; storage failures (Transient, Io, Auth) throw.
VerifyReport verify_repository(Repository& repo, const Inventory& inv, const VerifyOptions& opts);

// `verify` may be null (no --verify).
std::string inventory_text(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify);
std::string inventory_json(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify);

}  // namespace pgvault
