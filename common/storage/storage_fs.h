// The "fs" storage backend: a repository in a local directory (or a mounted network filesystem).
// Objects are files under the root; keys map to relative paths. put() is AtomicFileWriter (temp file,
// fsync, rename or no-replace link, fsync directory), so readers never see a partial object.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/storage/storage.h"

namespace pgvault {

// The one mode rule of the fs backend (docs/FORMAT.md, "File modes"): every file and directory a tool
// creates in a repository gets these modes, whichever tool created it and whatever its umask (the
// archiver of PostgreSQL runs with 077, cron with 022). A root that existed already keeps its mode.
inline constexpr unsigned kRepositoryFileMode = 0640;
inline constexpr unsigned kRepositoryDirMode = 0750;

std::unique_ptr<Storage> make_fs_storage(const std::string& root);

// Temporary files of the fs backend: <dir>/.pgvault-tmp.<name>.<pid>@<host tag>.<n>.<random>, where the
// host tag (16 hex digits) names this machine's boot and PID namespace (hostname, boot id, pid namespace),
// so a pid is only ever judged on the host and namespace that own it.
std::string fs_host_tag();
std::string fs_temp_path(const std::string& path);
struct FsTempOwner {
  long pid = 0;
  std::string host_tag;
};
// The writer named by a temporary file name (nullopt for any other name, e.g. an older pgvault's).
std::optional<FsTempOwner> parse_fs_temp_name(const std::string& file_name);

// Removes the temporary files in `dir` (not below it) whose writer is provably gone: written on this host
// and namespace by a pid that no longer exists, or, for a file of another host or namespace (or an older
// name form), not modified for `max_age` seconds. A file of a live pid of this host is never removed.
// Best effort: returns the number removed, never throws. put() calls it for the directory it writes to
// about once in 16 calls (chosen by the key).
inline constexpr std::int64_t kFsStaleTempAge = 24 * 3600;
std::size_t sweep_dead_temporaries(const std::string& dir, std::int64_t max_age = kFsStaleTempAge);

}  // namespace pgvault
