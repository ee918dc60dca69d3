// base-push --type incremental|diff: choosing the parent and the mode.
//
// The parent is the newest complete backup (for a differential, --type diff: the newest complete FULL
// backup; the result is stored as an incremental whose parent is that full) of the same database system (same PostgreSQL major version
// and segment size) whose chain of parents is complete in the repository and whose timeline is the
// server's current timeline, or an ancestor of it whose switch to the next timeline on the server's
// history (the history file in the repository) is at or after the backup's stop LSN.
// The mode: "server" (PostgreSQL 17+ with summarize_wal = on, and the parent's stored backup_manifest
// to upload) or "client" (block filtering by page LSN; PostgreSQL 15/16, summarize_wal off, or a parent
// stored without the server's manifest). Each fallback is logged; with `no_fallback` the run refuses
// instead (Config error) of taking a full backup or client-side blocks.
#pragma once

#include <optional>
#include <string>

#include "common/backup/server_checks.h"
#include "common/backup/tar_receiver.h"
#include "common/repo/inventory.h"

namespace pgvault {

struct ParentChoice {
  std::optional<BackupManifest> parent;
  std::string why_none;  // when there is none: why (one line)
};
// Among inv.backups (only full backups when `full_only`); `timeline` is the server's current timeline.
ParentChoice choose_parent(const Inventory& inv, const ServerFacts& server, std::uint32_t timeline,
                           bool full_only = false);

struct IncrementalPlan {
  BackupManifest parent;  // the parent's head: its files are left out (client mode: in base.parent_files)
  IncrementalBase base;
  std::string parent_server_manifest;  // server mode: what UPLOAD_MANIFEST sends
  std::string mode() const { return base.server_mode ? "server" : "client"; }
};

// nullopt: take a full backup (the reason was logged). Throws Config under `no_fallback` instead of
// falling back. `differential`: the parent is the newest usable full backup (choose_parent's full_only).
std::optional<IncrementalPlan> plan_incremental(Repository& repo, ReplicationConnection& conn,
                                                const ServerFacts& server, bool no_fallback,
                                                bool differential = false);

}  // namespace pgvault
