// The repository layout: the one place that builds, and parses, the name of every object in a
// repository. No other code concatenates a key (see docs/FORMAT.md for the layout).
//
//   pgvault.repo.json                 marker: written by repo-init; no other tool creates a repository
//   pgvault.json                      identity: format, system identifier, PostgreSQL version, segment size
//   pgvault.key.json                  key record: key check and KDF parameters (when encryption is used)
//   wal/<first 16 hex>/<segment>      WAL segments, .partial and .backup files
//   wal/<TTTTTTTT>.history            timeline history files
//   walindex/<first 16 hex>/<segment> the WAL index of a segment (repo/wal_index.h): what recovery targets
//                                     need from its records; beside wal/ so WAL listings are unchanged
//   backups/<label>/claim             base-push's claim of the label
//   backups/<label>/bundle-NNNNNN     the backup's files, packed
//   backups/<label>/backup_manifest   the server's own backup_manifest (parent of a server-side incremental)
//   backups/<label>/manifest.json     written last: the commit point of the backup
//   backups/<label>/deleting          retention-prune's tombstone, written before the manifest is removed
//   backups/<label>/marks             kept mark and annotations (repo/marks.h), rewritten when they change
//   locks/<name>                      repository locks (common/repo/lock.h)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/pg/wal.h"

namespace pgvault::keys {

std::string marker();
std::string identity();
std::string key_record();
std::string wal(const WalFileName& name);
std::string wal_prefix();                                  // "wal/"
std::string wal_index(const WalFileName& name);            // "walindex/<first 16 hex>/<segment>" (segments only)
std::string wal_index_prefix();                            // "walindex/"
// The segment a key under walindex/ is the index of; nullopt for any other key.
std::optional<WalFileName> parse_wal_index_key(const std::string& key);
std::string backups_prefix();                              // "backups/"
std::string backup_prefix(const std::string& label);       // "backups/<label>/"
std::string backup_manifest(const std::string& label);
std::string backup_bundle(const std::string& label, std::uint64_t index);
std::string backup_server_manifest(const std::string& label);  // "backups/<label>/backup_manifest"
std::string backup_claim(const std::string& label);        // "backups/<label>/claim" (base-push's label claim)
std::string backup_tombstone(const std::string& label);    // "backups/<label>/deleting" (retention-prune)
std::string backup_marks(const std::string& label);        // "backups/<label>/marks" (repo/marks.h)
std::string lock(const std::string& name);                 // "locks/<name>"

// A key under backups/: the label of its backup and its name inside the backup's folder
// ("backups/L/bundle-000001" -> {"L", "bundle-000001"}).
struct BackupObject {
  std::string label;
  std::string name;
};
// nullopt for a key not under backups/<label>/ (no label, or an empty one).
std::optional<BackupObject> parse_backup_key(const std::string& key);

// The folder part of a key, with its trailing '/' ("wal/0000000100000000/x" -> "wal/0000000100000000/";
// "" for a key at the top).
std::string folder_of(const std::string& key);

}  // namespace pgvault::keys
