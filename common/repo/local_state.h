// Local state folders outside the data directory and the repositories: the owed queues (owed.h) and the
// state records of archive-info and the WAL tools (wal_state.h). Each kind lives under a base folder: the
// configured one, else /var/lib/pgvault/<leaf> when it exists (or, when `create` and not run as root, can
// be created), else /var/tmp/pgvault-<uid>/<leaf>. Readers never create: a reader finds the shared folder
// once a writer made it, and the per-user one otherwise, as the writer did. root never creates the shared
// folder (the package makes /var/lib/pgvault for the postgres user; a root-made 0700 folder would shut
// that user out).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "common/config/config.h"

namespace pgvault {

std::string local_state_base(const std::string& configured, const std::string& leaf, bool create);
// The same under `shared_root` (instead of /var/lib/pgvault) for the effective user `euid`.
std::string local_state_base_in(const std::string& shared_root, const std::string& configured, const std::string& leaf,
                                bool create, uid_t euid);

// The name of one repository's folder under such a base: "<name>-<16 hex digits>", the hex from what
// the repository is (its type and location), so a renamed or relocated repository gets a new folder and
// never inherits another's state.
std::string repository_state_name(const Config::Repository& r);

// The whole of a small state file. Throws NotFound when it does not exist, Io when it cannot be read or
// is larger than `limit` bytes (not one of ours).
std::string read_state_file(const std::string& path, std::size_t limit);

}  // namespace pgvault
