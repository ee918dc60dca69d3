// Spool folders for look-ahead archiving and prefetching recovery: local state outside pg_wal and
// outside the data directory, one folder per repository.
//
// Push records: after a look-ahead push has made segment X durable, "<push spool>/X.done" records the
// file's identity (device, inode, size, mtime and ctime in nanoseconds) and digest. When PostgreSQL
// later calls wal-push for X, the call succeeds at once only if the record exists and the file's
// identity still matches it; anything else (no record, a changed file) goes the normal way. A record is
// only written after the object is durable, so a failed look-ahead is never reported as success.
//
// Prefetch: "<fetch spool>/X" is a verified, decoded WAL file and "X.sha256" its digest; wal-fetch
// checks the digest again before handing the file over by rename (copy across filesystems).
#pragma once

#include <optional>
#include <string>

#include "common/codec.h"
#include "common/config.h"

namespace pgvault {

// The spool folder: `configured` when set, else /var/tmp/pgvault-<uid>/<kind>-<hash of repository>.
// Created (mode 0700) when missing.
std::string spool_dir(const std::string& configured, const std::string& kind, const std::string& repo_describe);

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

}  // namespace pgvault
