// Fake system calls for common/base/fs_sync.h: count fsync/syncfs calls, make them fail, and say whether
// syncfs reports errors, for the lifetime of a FakeSync (the real calls are restored after).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common/base/fs_sync.h"

namespace pgvault::testing {

struct FakeSync {
  // Atomic: the restore's worker threads call the fakes at once.
  static inline std::atomic<int> fsyncs{0};
  static inline std::atomic<int> syncfs_calls{0};
  static inline std::atomic<int> syncfs_errno{0};  // != 0: syncfs fails with it
  static inline std::atomic<bool> reports{true};   // what syncfs_reports_errors answers

  explicit FakeSync(bool syncfs_reports_errors) : saved_(sync_calls()) {
    fsyncs = syncfs_calls = syncfs_errno = 0;
    reports = syncfs_reports_errors;
    sync_calls() = SyncCalls{
        [](int fd) {
          ++fsyncs;
          return ::fsync(fd);
        },
        [](int fd) {
          ++syncfs_calls;
          const int err = syncfs_errno.load();
          if (err == 0) return ::syncfs(fd);
          errno = err;
          return -1;
        },
        [](int) { return reports.load(); }};
  }
  ~FakeSync() { sync_calls() = saved_; }
  FakeSync(const FakeSync&) = delete;
  FakeSync& operator=(const FakeSync&) = delete;

 private:
  SyncCalls saved_;
};

}  // namespace pgvault::testing
