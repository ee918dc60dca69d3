// The chain of a backup: the backup itself, its parent, the parent's parent, ..., down to a full backup.
// An incremental backup can be restored only when its chain is complete (every member a complete backup
// of the same database system, each one starting after its parent); retention keeps every member of a
// kept backup's chain; archive-info shows and --verify checks it.
//
// resolve_chain() reads only the inventory (manifests already loaded and verified). It stops at the
// first broken link and names it: a parent that does not exist or is incomplete (NotFound), a parent of
// another database system or PostgreSQL version (Foreign), a parent that does not start before its child
// (Corruption), a parent that is not the backup a server-side incremental was taken against (its
// backup_label's "INCREMENTAL FROM LSN/TLI" lines name the parent's start LSN and timeline: Corruption),
// a cycle or a chain longer than kMaxChainLength (Corruption).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/base/errors.h"
#include "common/repo/inventory.h"

namespace pgvault {

// More backups than this in one chain is treated as a broken chain (a bound on restore's work and memory).
inline constexpr std::size_t kMaxChainLength = 1000;

struct BackupChain {
  std::vector<const BackupManifest*> members;  // newest first: the backup, its parent, ..., the full backup
  std::string problem;                         // "" when complete; else one line naming the broken link
  ErrorKind problem_kind = ErrorKind::Corruption;
  bool complete() const { return problem.empty(); }
  // "F <- I1 <- I2": the labels, full backup first (the members found, when incomplete).
  std::string text() const;
};

// Pointers into inv.backups: `inv` must outlive the result. `b` need not be one of inv.backups.
BackupChain resolve_chain(const Inventory& inv, const BackupManifest& b);

}  // namespace pgvault
