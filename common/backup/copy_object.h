// One object of backup-copy (copy.h): read from the source, decoded and verified, and re-encoded into
// the destination, streaming (memory bounded whatever its size). The destination commits the object only
// after the source's decoder verified every byte (and the checks below passed); a failed read leaves
// nothing at the destination.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/repo/manifest.h"
#include "common/repo/repo.h"

namespace pgvault {

struct ObjectToCopy {
  std::string key;
  // A bundle: its files (files_in_bundle) are checked against the manifest's checksums, and its plaintext
  // size and SHA-256 against the manifest's bundle entry.
  const BackupManifest* backup = nullptr;
  std::uint64_t bundle = 0;
  std::optional<std::vector<const ManifestFile*>> bundle_files;
  // A WAL segment: its size and first page header are checked against its name and the identity.
  std::optional<WalFileName> segment;
};

// The manifest's files stored in bundle `bundle` ("unchanged" entries of an incremental are in none).
std::vector<const ManifestFile*> files_in_bundle(const BackupManifest& m, std::uint64_t bundle);

// Copies `what.key` from `src` to `dst` (same key). Returns the plaintext digest. Throws the source's
// error (Corruption, NotFound, Auth...) naming the object, or the destination's.
Digest copy_object(Repository& src, Repository& dst, const ObjectToCopy& what, const Identity& id);

// Reads and verifies `what.key` at `src` like copy_object, writing nothing. Returns the plaintext digest.
Digest verify_object(Repository& src, const ObjectToCopy& what, const Identity& id);

}  // namespace pgvault
