// What failed and killed base-push runs leave behind, and how a run cleans up after itself or them.
#pragma once

#include <string>
#include <vector>

#include "common/backup/backup.h"

namespace pgvault {

// Gives up a failed backup: deletes what this run wrote (the manifest first if it was attempted, then
// the bundles `own`, the claim last), but only while the claim is still its own. Best effort, never
// throws.
void abandon_backup(Storage& storage, const BackupClaim& claim, const std::vector<std::string>& own,
                    bool manifest_attempted);

// Removes the temporary files that killed runs left in the newest `max_dirs` backup folders (a killed
// base-push never writes to its label again, so the puts' own sweep never reaches them), where the
// store has such files (Storage::sweep_dead_writers; only provably dead writers' files). Logs what it
// removed.
void sweep_killed_runs(Storage& storage, std::size_t max_dirs);

}  // namespace pgvault
