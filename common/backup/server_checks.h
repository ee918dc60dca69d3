// The checks base-push makes before it claims a label: the server can take a backup whose WAL reaches
// the archive, and the repository belongs to this database system.
#pragma once

#include <cstdint>
#include <string>

#include "common/pg/pgconn.h"
#include "common/repo/repo.h"

namespace pgvault {

struct ServerFacts {
  int version = 0;             // e.g. 150004
  std::string version_text;    // e.g. "15.4"
  SystemInfo system;
  std::uint32_t segment_size = 0;
};

// Version 15 or newer, wal_level not minimal, archive_mode not off, something configured to archive
// (when the role may read it), a valid wal_segment_size. Throws Config (or Transient for an invalid
// segment size), naming the server.
ServerFacts check_server(ReplicationConnection& conn);

// The repository's identity must name the server's database system (Foreign) and segment size (Config);
// created from the server's on first use.
void check_repository_identity(Repository& repo, const ServerFacts& server);

}  // namespace pgvault
