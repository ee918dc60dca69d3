// archive-info --verify: the full verification of a repository. Reads every object through the decoder
// and checks what each one must hold; collects the problems it finds instead of stopping at the first.
//
// Contract of verify_repository():
// - Lists each complete backup's objects, then reads every bundle of it, every WAL object (segments,
//   .partial, .backup files) and every timeline history file, `parallel` at a time (a TaskGroup).
//   Writes nothing.
// - Checks: object digests and authentication tags (the decoder); every file of a bundle against its
//   manifest checksum (CRC-32C; SHA-256 in format 1 manifests) through a BundleSplitter; a bundle's
//   plaintext size and SHA-256 and its stored size against the manifest; a full WAL segment's size and
//   first page header (system identifier, position), and its WAL index when it has one (it must decode
//   and describe the segment; not counted in `objects`; a segment without one is fine); WAL continuity
//   from each backup's start across timeline switches to the end of every timeline that descends from
//   it; every "blocks" entry's block-diff structure and length (its CRC-32C covers the stored bytes);
//   every incremental backup's chain (common/repo/chain.h) complete.
// - Problems, by kind: "corruption" (a damaged or foreign object, a wrong file checksum or size, an
//   unreadable manifest or history file; a Corruption or Auth error reading an object), "missing" (a
//   bundle the manifest names, an object listed but gone, a WAL segment on a backup's path: the key is
//   the one it should have; an incremental's parent that is gone: the key is the child's manifest), "mismatch" (a bundle's stored size differs from the manifest), "unreadable"
//   (a manifest that could not be read for a reason other than corruption). Sorted by key, then message.
// - Throws the first other error reading an object (Transient, Io, ...) or listing a backup: no verdict
//   can be given then. Objects being read at that moment are finished, no further one is started.
// - Progress (opts.progress): "verifying: N of M objects, <bytes>" on stderr, erased at the end.
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

// `inv` is load_inventory(repo) (its manifests and history files are already decoded and verified).
VerifyReport verify_repository(Repository& repo, const Inventory& inv, const VerifyOptions& opts);

}  // namespace pgvault
