// One object of backup-copy (copy.h): read from the source, decoded and verified, and either re-encoded
// into the destination or, where the destination would encode it the same way, its stored bytes copied
// as they are; streaming (memory bounded whatever its size). The destination commits the object only
// after the source's decoder verified every byte (and the checks below passed); a failed read leaves
// nothing at the destination.
//
// Stored bytes (CopyDestination::stored_bytes): an object's bytes depend only on the master key (the
// per-object key, the key id and the keyed digest derive from it and the object's own salt), the storage
// key it is bound to (the same under backup-copy), the compression and the chunk size (docs/FORMAT.md,
// 1). So when the source's reading key and the destination's writing key are the same 32 bytes (or
// neither encrypts) and both compress alike, each object's header is checked as it arrives: format
// version 2, the destination's compression, encryption and chunk size. An object that differs (an older
// object written under other settings) is read again and re-encoded; the first attempt's upload is
// dropped uncommitted.
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

// The destination as copy_object's workers use it: taken in the thread that owns both repositories
// before workers start (it loads src's reading key and dst's writing key, creating dst's key record when
// it encrypts); the repositories must outlive it.
struct CopyDestination {
  Storage* storage = nullptr;
  std::string where;        // Repository::describe()
  EncodeOptions encode;       // dst.encode_options()
  bool stored_bytes = false;  // stored bytes may be copied (see above), object by object
};
CopyDestination copy_destination(Repository& src, Repository& dst);

// Copies `what.key` from `src` to `dst` (same key). Returns the plaintext digest. Throws the source's
// error (Corruption, NotFound, Auth...) naming the object, or the destination's. Thread-safe once
// copy_destination() returned (several objects at once, one thread each).
Digest copy_object(Repository& src, const CopyDestination& dst, const ObjectToCopy& what, const Identity& id);

// Reads and verifies `what.key` at `src` like copy_object, writing nothing. Returns the plaintext digest.
Digest verify_object(Repository& src, const ObjectToCopy& what, const Identity& id);

}  // namespace pgvault
