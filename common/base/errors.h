// Errors of pgvault: one exception type carrying a kind.
//
// Every failure in common/ is reported by throwing pgvault::Error. The kind travels unchanged up to a
// tool's main(), where the one exit-code table (common/cli/exit_codes.cpp) maps kinds to exit
// codes (docs/EXIT-CODES.md).
// Exceptions thrown by libraries (toml++, nlohmann-json, std::filesystem) are caught where the library
// is called and rethrown as Error with the right kind; no other exception type may escape common/.
//
// Messages are one line, lowercase, and name the file, key or object at fault. They never contain a
// secret (key material, passphrases, authorization headers).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace pgvault {

enum class ErrorKind {
  NotFound,      // the object or file does not exist (the only kind wal-fetch may report as "missing")
  Duplicate,     // an object already exists with different content
  Corruption,    // stored data failed verification (digest, AEAD tag, truncation, bad header)
  Auth,          // wrong key, key check mismatch, storage credentials refused
  Transient,     // storage unavailable after bounded retries, timeouts, connection failures
  Io,            // local I/O failure (disk full, permission denied on a local path, ...)
  Config,        // bad configuration: unknown key, bad value, unreadable config file
  InvalidInput,  // bad command-line input: not a WAL file name, missing %p, ...
  Foreign,       // data from another cluster (system identifier mismatch)
  Conflict,      // the repository is locked / in use by another process
  Interrupted,   // stopped by a signal
  NotInitialised,  // no repository at the configured location (repo-init creates one)
  Internal,      // a bug
};

// Stable lowercase name of a kind, used in logs and JSON ("not-found", "corruption", ...).
std::string_view kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message) : std::runtime_error(std::move(message)), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Build an Error from errno: ENOENT becomes NotFound, EACCES/EPERM/EROFS/ENOSPC/EIO... become Io.
// This is the only place that turns errno into a kind. `what` names the operation and path,
// e.g. "open /var/lib/pgvault/repo/wal/...".
Error errno_error(std::string_view what, int err);

}  // namespace pgvault
