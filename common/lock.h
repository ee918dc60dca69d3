// A repository lock that works on every backend: an object locks/<name> created with
// PutOptions::if_absent, holding who took it (tool, host, pid, time, a random token).
//
// Contract:
// - acquire() creates the object and returns the lock; when it exists and is not stale, it throws
//   ErrorKind::Conflict with a message naming the holder (tool, host, pid, since when) and the key.
// - A lock is stale when it is older than `stale_after` seconds, or when it was taken on this host by a
//   process that no longer exists (a crashed run: no need to wait). A stale lock is taken over: removed,
//   then created again with if_absent; the lock is read back and must carry our token, so of two
//   processes taking over at once, at most one wins on the fs backend (O_EXCL). On an S3 store without
//   conditional writes the check is head-then-put: two takeovers within milliseconds may both believe
//   they won; the read-back narrows but does not close that window.
// - release() removes the object if it still carries our token (another process may have taken it over
//   after we went stale); the destructor releases, best effort, never throws.
// - A lock object that cannot be parsed counts as held (not stale) until `stale_after` has passed since
//   its storage mtime.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/storage.h"

namespace pgvault {

struct LockHolder {
  std::string tool;
  std::string host;
  std::int64_t pid = 0;
  std::int64_t time = 0;   // unix seconds when taken
  std::string token;
};

struct LockOptions {
  std::string tool;                 // who is taking it, e.g. "retention-prune"
  std::int64_t stale_after = 3600;  // seconds. Default: 1 hour
  std::int64_t now = 0;             // unix seconds (the caller's clock, so tests can move it)
};

class RepositoryLock {
 public:
  // Takes locks/<name> in `storage` (which must outlive the lock).
  static RepositoryLock acquire(Storage& storage, const std::string& name, const LockOptions& opts);

  RepositoryLock(RepositoryLock&& other) noexcept;
  RepositoryLock& operator=(RepositoryLock&&) = delete;
  ~RepositoryLock();

  // Removes the lock object (if still ours). Throws on storage failure.
  void release();
  const std::string& key() const { return key_; }
  // The lock that was taken over, when acquire() took over a stale one.
  const std::optional<LockHolder>& taken_over() const { return taken_over_; }

 private:
  RepositoryLock(Storage* storage, std::string key, std::string token)
      : storage_(storage), key_(std::move(key)), token_(std::move(token)) {}
  Storage* storage_ = nullptr;
  std::string key_;
  std::string token_;
  std::optional<LockHolder> taken_over_;
};

// "retention-prune on host db1 pid 4711 since 2026-11-21T16:41:00Z"
std::string describe_holder(const LockHolder& h);

}  // namespace pgvault
