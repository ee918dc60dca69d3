#include "common/backup/leftovers.h"

#include <spdlog/spdlog.h>

namespace pgvault {

void abandon_backup(Storage& storage, const BackupClaim& claim, const std::vector<std::string>& own,
                    bool manifest_attempted) {
  try {
    if (!claim_holds(storage, claim)) {
      spdlog::warn("backup {} abandoned; its label is claimed by another base-push now, so nothing is deleted "
                   "(retention-prune removes leftovers)",
                   claim.label);
      return;
    }
    if (manifest_attempted) storage.remove(keys::backup_manifest(claim.label));
    if (!own.empty()) storage.remove_many(own);
    storage.remove(keys::backup_claim(claim.label));
    spdlog::info("backup {} abandoned; its {} uploaded object(s) and its claim deleted", claim.label, own.size());
  } catch (const std::exception& e) {
    spdlog::warn("backup {} abandoned; could not delete its uploaded objects ({}); retention-prune removes them later",
                 claim.label, e.what());
  }
}

void sweep_killed_runs(Storage& storage, std::size_t max_dirs) {
  const std::string prefix = keys::backups_prefix();
  if (std::size_t removed = storage.sweep_dead_writers(prefix, max_dirs)) {
    spdlog::info("removed {} temporary file(s) left by killed base-push runs in {}/{}", removed, storage.describe(),
                 prefix);
  }
}

}  // namespace pgvault
