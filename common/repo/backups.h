// The backups in a repository: the one listing of backups/ (every tool that needs to know which
// backups exist starts from list_backup_folders), and reading and writing a backup's manifest.
//
// A backup folder backups/<label>/ is complete when it holds manifest.json (written last by base-push,
// see manifest.h); without one it is incomplete: a base-push still running or interrupted, or a backup
// whose deletion by retention-prune was interrupted (its tombstone says so, see keys::backup_tombstone).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/repo/manifest.h"
#include "common/storage/storage.h"

namespace pgvault {

class Repository;

// One backup folder as a listing shows it (nothing is read).
struct BackupFolder {
  std::string label;
  std::uint64_t objects = 0;       // every object in the folder (manifest, bundles, claim, tombstone)
  std::uint64_t stored_bytes = 0;  // their total size
  std::int64_t newest_mtime = 0;   // the newest object's mtime, 0 when the storage gives none
  bool has_manifest = false;
  bool has_tombstone = false;
  bool has_marks = false;          // backups/<label>/marks exists (repo/marks.h)
};

// Every backup folder, by label: one listing of backups/. Keys that are not inside a backup folder
// are skipped.
std::vector<BackupFolder> list_backup_folders(Storage& storage);

// What the repository holds under backups/, manifests read (a manifest that cannot be read throws:
// load_inventory in inventory.h is the tolerant reader, which lists such a backup as incomplete).
struct BackupListing {
  std::vector<BackupManifest> complete;   // sorted by label (oldest first)
  std::vector<std::string> incomplete;    // labels with objects but no manifest
};
BackupListing list_backups(Repository& repo);

// Reads and verifies one manifest. NotFound when the backup has no manifest.
BackupManifest read_manifest(Repository& repo, const std::string& label);
// Writes the manifest (the commit point of a backup), its text made as it is stored (ManifestText).
void write_manifest(Repository& repo, const BackupManifest& m);

}  // namespace pgvault
