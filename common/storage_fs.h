// The "fs" storage backend: a repository in a local directory (or a mounted network filesystem).
// Objects are files under the root; keys map to relative paths. put() is AtomicFileWriter (temp file,
// fsync, rename or no-replace link, fsync directory), so readers never see a partial object.
#pragma once

#include <memory>
#include <string>

#include "common/storage.h"

namespace pgvault {

// The one mode rule of the fs backend (docs/FORMAT.md, "File modes"): every file and directory a tool
// creates in a repository gets these modes, whichever tool created it and whatever its umask (the
// archiver of PostgreSQL runs with 077, cron with 022). A root that existed already keeps its mode.
inline constexpr unsigned kRepositoryFileMode = 0640;
inline constexpr unsigned kRepositoryDirMode = 0750;

std::unique_ptr<Storage> make_fs_storage(const std::string& root);

}  // namespace pgvault
