// Durability of many freshly written files in one step at the end (like PostgreSQL's fsync_pgdata with
// its syncfs method) instead of an fsync per file as it is written: each location is opened before the
// first file is written beneath it, and at the end one syncfs(2) per filesystem makes everything written
// there durable. Used only where syncfs reports every write-back error on the filesystem since that
// descriptor was opened (Linux >= 5.8, on ext4, xfs and btrfs); a file anywhere else is fsynced when it
// is written, as before. No descriptor is kept per file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/fs.h"

namespace pgvault {

// The system calls used here; tests replace them (sync_calls()) to inject failures and count calls.
struct SyncCalls {
  int (*fsync)(int fd);
  int (*syncfs)(int fd);
  // Whether syncfs(fd) reports every write-back error on fd's filesystem since fd was opened.
  bool (*syncfs_reports_errors)(int fd);
  // start_writeback (fs.h).
  void (*writeback)(int fd, std::uint64_t offset, std::uint64_t bytes);
};
SyncCalls& sync_calls();
// The real answer of SyncCalls::syncfs_reports_errors: Linux >= 5.8 and fd on ext4, xfs or btrfs.
bool syncfs_reports_errors(int fd);

// The locations of one job (a restore) whose files are made durable by syncfs at the end. One job at a
// time per process.
class FilesystemSync {
 public:
  FilesystemSync() = default;
  ~FilesystemSync();
  FilesystemSync(const FilesystemSync&) = delete;
  FilesystemSync& operator=(const FilesystemSync&) = delete;

  // Opens the directory `root` (call it before anything is written beneath it); files later written on
  // its filesystem are deferred to sync() when syncfs reports errors there. Returns whether it is.
  bool add(const std::string& root);
  // Whether the files beneath `root` (added before) are made durable by sync().
  bool covers(const std::string& root) const;
  // syncfs once per filesystem; a write-back error is Io naming the location(s) on that filesystem.
  void sync();

 private:
  struct Location {
    std::string roots;  // "a, b": every added root on this filesystem
    dev_t dev = 0;
    Fd fd;  // opened before the first write beneath any of the roots
  };
  std::vector<Location> locations_;
  std::vector<std::string> covered_;
};

// The write-back of a large file started while it is written, one step of bytes at a time
// (start_writeback), so that sync_written_file() at its end, or the final fsync or syncfs, has only its
// last step left to submit: at the end of a restore, starting the write-back of a 671 MB table at once
// took the writing thread 0.2 s, on the restore's critical path. Nothing here is an error.
class WritebackAhead {
 public:
  static constexpr std::uint64_t kStep = 16u << 20;
  // `n` more bytes were written at the end of what `fd` (a file written from offset 0) had.
  void wrote(int fd, std::uint64_t n);
  // The next file starts at offset 0.
  void reset() { written_ = started_ = 0; }

 private:
  std::uint64_t written_ = 0;  // bytes written to the file so far
  std::uint64_t started_ = 0;  // write-back started below this offset
};

// Whether `fd`'s filesystem is one of the current FilesystemSync's (a local ext4, xfs or btrfs whose
// syncfs reports errors): where pitr-prepare writes its large files past the page cache.
bool sync_deferred(int fd);

// A file just written: when its filesystem is one of the current FilesystemSync's, write-back is started
// (large files) and durability is left to FilesystemSync::sync(); otherwise it is fsynced now. The
// caller then closes it.
void sync_written_file(int fd, const std::string& path, std::uint64_t size);

}  // namespace pgvault
