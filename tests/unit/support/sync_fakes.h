// Fake system calls for common/base/fs_sync.h: count fsync/syncfs calls, make them fail, and say whether
// syncfs reports errors, for the lifetime of a FakeSync (the real calls are restored after).
#pragma once

#include <cerrno>
#include <unistd.h>

#include "common/base/fs_sync.h"

namespace pgvault::testing {

struct FakeSync {
  static inline int fsyncs = 0;
  static inline int syncfs_calls = 0;
  static inline int syncfs_errno = 0;  // != 0: syncfs fails with it
  static inline bool reports = true;   // what syncfs_reports_errors answers

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
          if (syncfs_errno == 0) return ::syncfs(fd);
          errno = syncfs_errno;
          return -1;
        },
        [](int) { return reports; }};
  }
  ~FakeSync() { sync_calls() = saved_; }
  FakeSync(const FakeSync&) = delete;
  FakeSync& operator=(const FakeSync&) = delete;

 private:
  SyncCalls saved_;
};

}  // namespace pgvault::testing
