// Fake system calls for common/base/fs_sync.h: count fsync/syncfs calls, make them fail, say whether
// syncfs reports errors and note the write-backs started, for the lifetime of a FakeSync (the real calls are restored after).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <utility>
#include <vector>

#include "common/base/fs_sync.h"

namespace pgvault::testing {

struct FakeSync {
  // Atomic: the restore's worker threads call the fakes at once.
  static inline std::atomic<int> fsyncs{0};
  static inline std::atomic<int> syncfs_calls{0};
  static inline std::atomic<int> syncfs_errno{0};  // != 0: syncfs fails with it
  static inline std::atomic<bool> reports{true};   // what syncfs_reports_errors answers
  static inline std::mutex mu;
  static inline std::vector<std::pair<std::uint64_t, std::uint64_t>> writebacks;  // (offset, bytes), under mu

  explicit FakeSync(bool syncfs_reports_errors) : saved_(sync_calls()) {
    fsyncs = syncfs_calls = syncfs_errno = 0;
    {
      std::lock_guard g(mu);
      writebacks.clear();
    }
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
        [](int) { return reports.load(); },
        [](int fd, std::uint64_t offset, std::uint64_t bytes) {
          {
            std::lock_guard g(mu);
            writebacks.emplace_back(offset, bytes);
          }
          start_writeback(fd, offset, bytes);
        }};
  }
  ~FakeSync() { sync_calls() = saved_; }
  FakeSync(const FakeSync&) = delete;
  FakeSync& operator=(const FakeSync&) = delete;

 private:
  SyncCalls saved_;
};

}  // namespace pgvault::testing
