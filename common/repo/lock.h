// A repository lock that works on every backend: an object locks/<name> created with
// PutOptions::if_absent, holding who took it (tool, host, pid, time, a random token).
//
// Contract:
// - acquire() creates the object and returns the lock; when it exists and is not stale, it throws
//   ErrorKind::Conflict with a message naming the holder (tool, host, pid, since when) and the key.
// - A lock is stale when its record time (set at acquire, advanced by refresh/keep_fresh) is `stale_after`
//   seconds old or more, or when it was taken on this host by a
//   process that no longer exists (a crashed run: no need to wait). A stale lock is taken over: removed,
//   then created again with if_absent; the lock is read back and must carry our token, so of two
//   processes taking over at once, at most one wins on the fs backend (O_EXCL). On an S3 store without
//   conditional writes the check is head-then-put: two takeovers within milliseconds may both believe
//   they won; the read-back narrows but does not close that window.
// - release() removes the object if it still carries our token (another process may have taken it over
//   after we went stale); the destructor releases, best effort, never throws.
// - A lock object that cannot be parsed counts as held (not stale) until `stale_after` has passed since
//   its storage mtime.
// - A holder that must not go on without its lock (retention-prune deleting) calls check() before each
//   step: it throws Conflict once a refresh by keep_fresh() has failed or the lock object names another
//   holder.
// - Threads: a RepositoryLock is used by one thread; keep_fresh()'s own thread uses the same Storage
//   at the same time (so the Storage must allow that: every backend does, see storage.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/storage/storage.h"

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
  // On a store without conditional writes the lock object's create-if-absent check (a settle time, then
  // a HEAD that must show this put's ETag; PutOptions::confirm_later) runs at the first check() or
  // refresh instead of in acquire(), so its settle time passes while the holder works; acquire() still
  // reads the lock back at once. false: acquire() checks before it returns.
  bool check_create_later = false;
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
  // Rewrites the record with time = now (same token), so a run longer than stale_after is not taken
  // over. Throws Conflict when the lock is no longer ours.
  void refresh(std::int64_t now);
  // Refreshes from a background thread every `every` until release(), with time = the acquire()
  // time plus the elapsed time. The first failed refresh (storage error, or the lock was taken over)
  // is logged, ends the refreshing and marks the lock lost: check() throws from then on. Throws
  // Error(Internal) when the thread cannot be started.
  void keep_fresh(std::chrono::milliseconds every);
  // Throws Error(Conflict) naming the lock when it is lost: a refresh by keep_fresh() failed, or the
  // lock object (read now) is gone or names another holder. A storage error while reading throws too,
  // and a create-if-absent check left for later (LockOptions::check_create_later) that finds another
  // writer's object throws its Duplicate (the object gone: Conflict, the lock is not ours).
  void check() const;
  const std::string& key() const { return key_; }
  // The lock that was taken over, when acquire() took over a stale one.
  const std::optional<LockHolder>& taken_over() const { return taken_over_; }

 private:
  struct Heartbeat;
  RepositoryLock(Storage* storage, std::string key, std::string token, std::string record_tool, std::int64_t now);
  void stop_heartbeat();
  void verify_ours() const;  // Conflict unless the stored record carries our token
  void run_create_check() const;  // the check left by check_create_later, once, before anything else
  Storage* storage_ = nullptr;
  std::string key_;
  std::string token_;
  std::string tool_;
  std::int64_t acquired_at_ = 0;
  std::optional<LockHolder> taken_over_;
  std::shared_ptr<DeferredConfirms> create_check_;  // check_create_later; shared with the heartbeat
  std::unique_ptr<Heartbeat> heartbeat_;
};

// "retention-prune on host db1 pid 4711 since 2026-11-21T16:41:00Z"
std::string describe_holder(const LockHolder& h);

}  // namespace pgvault
