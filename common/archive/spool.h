// Spool folders for look-ahead archiving and prefetching recovery: local state outside pg_wal and
// outside the data directory, one folder per repository.
//
// Push records: after a look-ahead push has made segment X durable, "<push spool>/X.done" records the
// file's identity (device, inode, size, mtime and ctime in nanoseconds) and digest. When PostgreSQL
// later calls wal-push for X, the call succeeds at once only if the record exists and the file's
// identity still matches it; anything else (no record, a changed file) goes the normal way. A record is
// only written after the object is durable, so a failed look-ahead is never reported as success.
// "push.lock" is held by the running push worker (its pid inside), "X.inflight" by whoever pushes X
// while a worker may run (PushClaim).
//
// Prefetch: the spool belongs to one repository and one database system. Its files live in
// "<fetch spool>/<system identifier>-<16 hex of SHA-256 of the repository's description>" (see
// prefetch_spool_dir), so two configs sharing one [fetch] spool, or a repository deleted and recreated
// for another database system at the same location, never see each other's files. There "X" is a
// verified, decoded WAL segment and "X.ready" its record: the system identifier, segment size, digest
// and size the worker verified, the spooled file's identity (device, inode, size, times) and, on its
// second line, the repository's description. wal-fetch hands X over (by rename; copy across
// filesystems) only when the record names its own repository and system, the file's identity still
// matches, and X's first page header passes the same checks as a segment fetched from the repository;
// anything else is discarded and fetched from the repository. "X.inflight" marks a file a worker is
// fetching, "prefetch.lock" is held by the running worker, "prefetch.stop" asks it to stop and empty the
// folder (recovery ended), "prefetch.warned" records that a spool write failure was already logged as a
// warning (a full spool warns once, not on every call).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/codec/codec.h"
#include "common/config/config.h"
#include "common/pg/wal.h"

namespace pgvault {

// The spool folder: `configured` when set, else /var/tmp/pgvault-<uid>/<kind>-<hash of repository>.
// Created (mode 0700) when missing.
std::string spool_dir(const std::string& configured, const std::string& kind, const std::string& repo_describe);

// The push spool of the repositories a wal-push call writes to (Repository::describe() of each, in
// order): by default spool_dir("", "push", ...) of the one; for several, or inside a configured folder,
// a folder of its own for that set ("push-<hash>" / "several-<hash>" in `configured`), so a record
// written for a push into one repository never answers a call that must push into another one or into
// several, nor the reverse (two configs or `--repo` calls may share one configured [push] spool).
// Created (mode 0700) when missing and `create`.
std::string push_spool_dir(const std::string& configured, const std::vector<std::string>& repo_describes,
                           bool create = true);

// The prefetch spool of repository `repo_describe` for database system `system_identifier`: a folder
// inside spool_dir(configured, "fetch", repo_describe). Created (mode 0700) when missing and `create`.
std::string prefetch_spool_dir(const std::string& configured, const std::string& repo_describe,
                               std::uint64_t system_identifier, bool create = true);
// Every prefetch spool folder of repository `repo_describe` (any system) that exists, plus the spool
// folder itself (where versions before the per-system folders kept their files). Creates nothing.
std::vector<std::string> prefetch_spool_dirs(const std::string& configured, const std::string& repo_describe);

struct FileIdentity {
  unsigned long long dev = 0, ino = 0, size = 0;
  long long mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};
// Throws (NotFound/Io) when the file cannot be stat'ed.
FileIdentity file_identity(const std::string& path);

void write_push_record(const std::string& spool, const std::string& name, const FileIdentity& id, const Digest& d);
// True when a record for `name` exists and matches `id`. A mismatching or unreadable record is removed.
bool take_push_record(const std::string& spool, const std::string& name, const FileIdentity& id);
// Removes records older than `max_age_seconds`.
void prune_spool(const std::string& spool, long max_age_seconds);
// prune_spool, at most once per kPruneInterval for a spool (its kPrunedMark file's time says when it
// last ran): each wal-push call would otherwise read the whole spool, one record per file of the day.
inline constexpr long kPruneIntervalSeconds = 600;
inline constexpr const char* kPrunedMark = "pruned.mark";
void prune_spool_when_due(const std::string& spool, long max_age_seconds);

// ---- The prefetch spool (wal-fetch and its detached worker).

inline constexpr const char* kPrefetchStopFile = "prefetch.stop";
inline constexpr const char* kPrefetchWarnedFile = "prefetch.warned";

// "prefetch.lock" (or `file`): a worker holds it for its lifetime; wal-fetch (wal-push: "push.lock")
// spawns one only when nobody holds it. The holder's pid is written into it (write_pid).
inline constexpr const char* kPushLockFile = "push.lock";
// After a wal-fetch call asked the worker to stop (stop_prefetching) or a worker released its lock:
// when prefetch.stop is there and no worker holds the lock, empties the spool and removes the request,
// so neither order of "the worker looks for prefetch.stop" and "a call writes it" leaves it behind.
void tidy_after_stop(const std::string& spool);

class SpoolLock {
 public:
  explicit SpoolLock(const std::string& spool, const char* file = "prefetch.lock");
  ~SpoolLock();
  SpoolLock(const SpoolLock&) = delete;
  SpoolLock& operator=(const SpoolLock&) = delete;
  bool held() const { return held_; }
  // Records this process's pid in the held lock file (which process is the worker).
  void write_pid() const;

 private:
  int fd_ = -1;
  bool held_ = false;
};

// "<push spool>/X.inflight": whoever pushes X while the push worker runs (the worker, or wal-push's own
// call for X) holds a lock on it for the push, so the two never push X at the same time (and a call
// finds out that the worker is pushing its file and waits for its record instead). The kernel drops the
// lock when its holder dies (kill -9): an .inflight file nobody holds is free. Released on destruction.
class PushClaim {
 public:
  PushClaim(const std::string& spool, const std::string& name);
  ~PushClaim();
  PushClaim(const PushClaim&) = delete;
  PushClaim& operator=(const PushClaim&) = delete;
  // True when this process holds the claim; false when another one holds it or the spool cannot hold one.
  bool ours() const { return fd_ >= 0; }
  // True when another live process holds it.
  bool busy() const { return busy_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool busy_ = false;
};

// Whose prefetched files a spool folder holds (recorded in every entry).
struct SpoolOwner {
  std::string repository;  // Repository::describe()
  std::uint64_t system_identifier = 0;
  std::uint32_t segment_size = 0;
};

bool path_exists(const std::string& path);

// Writes "<data>.ready" for the verified file `data`: "<sysid> <segment size> <digest hex> <size> <file
// identity>\n<repository>\n".
void write_ready(const std::string& data, const SpoolOwner& owner, const Digest& d);

// Moves the prefetched copy of `name` to `dest`. When a worker is fetching it right now, waits for it
// (bounded). False when there is none, or when it may not be handed over (then it is thrown away and
// the caller fetches from the repository).
bool take_prefetched(const std::string& spool, const WalFileName& name, const std::string& dest,
                     const SpoolOwner& owner);

// Removes prefetched files (and their records) whose segment name sorts before `below`; all of them
// when `below` is empty. A worker's temporary files are its own (prune_spool ages out leftovers).
void clear_spool(const std::string& spool, const std::string& below);

// Recovery is ending (or a standby waits for streaming): empty the spool, and ask a running worker to
// stop and empty it again when it is done.
void stop_prefetching(const std::string& spool);

}  // namespace pgvault
