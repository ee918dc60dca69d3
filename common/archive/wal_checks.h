// The checks a WAL file passes before it is handed to PostgreSQL (wal-fetch, the prefetch spool), and
// the repository identity they are made against.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/base/io.h"
#include "common/pg/wal.h"
#include "common/repo/repo.h"

namespace pgvault {

// Config: the repository has no identity (a wrong path or bucket must not look like the end of the WAL).
Error no_identity(Repository& repo);

// The repository's identity (nullopt when there is none) after checking that, when the data
// directory's pg_control was read, it names the same database system (else Foreign): a repository of
// another system may neither serve a file nor answer "missing".
std::optional<Identity> matching_identity(Repository& repo, std::optional<std::uint64_t> control_sysid);

// The same, and the identity must exist (segments are checked against it; "missing" needs it).
Identity checked_identity(Repository& repo, std::optional<std::uint64_t> control_sysid);

// Segments and .partial files start with a long page header; history and .backup files do not.
bool has_page_header(const WalFileName& name);

// Checks a whole segment (its first page header and its size) against the name it is handed over as:
// Corruption or Foreign (check_segment_header), naming `where`.
void check_hand_over(ByteView header, std::uint64_t size, const WalFileName& name, std::uint32_t seg_size,
                     std::uint64_t sysid, const std::string& where);

// The first kWalLongHeaderSize bytes of `src` (fewer when it is shorter).
Bytes read_first_page(Source& src);

}  // namespace pgvault
