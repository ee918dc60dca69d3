// The owed queue: WAL files that a repository allowed to lag ([repositories.NAME] required = false) did
// not store when wal-push was called, to be pushed there later (by later wal-push calls, or
// `wal-push --catch-up`), oldest first. Local state outside the data directory, one folder per
// repository under [push] owed_dir (config.h says where it defaults to); the folder holds one small file
// per owed WAL file, written durably (file and folder fsynced) before wal-push reports success, and
// removed only after the file is durable in that repository. The content is not kept here: it is read
// back from a repository that stored it (the required ones always have).
//
// Back-off: the folder may also hold `.retry-after` (Unix seconds, one line, written atomically): after
// a push into the repository failed in a wal-push call, calls neither push into it nor catch it up
// before that time; they only record what it is owed (archive/multi_push.h). `wal-push --catch-up`
// ignores it and removes it once the queue is drained. Never an entry (not a WAL file name).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config/config.h"

namespace pgvault {

struct OwedEntry {
  std::string name;    // the WAL file name (segment, .partial, .history or .backup file)
  std::int64_t since;  // when it was first owed (Unix seconds)
};

// What one repository is owed, for archive-info and the metrics. `config` is narrowed to the repository
// (select_repository). Reads only; an absent queue is an empty one. Throws Io when the folder exists but
// cannot be read.
struct OwedStatus {
  std::string repository;                   // its name
  std::size_t segments = 0;                 // owed files
  std::optional<std::int64_t> oldest_since; // the oldest entry's `since`
};
OwedStatus owed_status(const Config& config);
// Whether `config`'s repository (narrowed) owes WAL file `name` now. Reads only; false when unsure.
bool is_owed(const Config& config, const std::string& name);

// The queue of one repository (`config` narrowed to it, as above).
class OwedQueue {
 public:
  explicit OwedQueue(const Config& config);
  const std::string& dir() const { return dir_; }
  // Records `name` as owed, durably; keeps the first `since` when it is owed already.
  void add(const std::string& name, std::int64_t since);
  // Forgets `name` (the repository stored it durably). Absent is fine.
  void remove(const std::string& name);
  // Every entry, oldest first (WAL file name order).
  std::vector<OwedEntry> list() const;
  // True when nothing is owed: stops at the first entry and reads none (the push path asks it per file).
  bool empty() const;
  // The back-off time (Unix seconds) recorded by set_retry_after, if any (none when unreadable).
  std::optional<std::int64_t> retry_after() const;
  // Records the back-off time, atomically (durability is not needed: losing it costs one more attempt).
  void set_retry_after(std::int64_t when);
  // Forgets the back-off time. Absent is fine.
  void clear_retry_after();

 private:
  std::string dir_;
};

}  // namespace pgvault
