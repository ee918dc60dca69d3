// What is known of a store's conditional writes (`If-None-Match: *` on PUT): the process-wide
// knowledge shared by every thread (CondWrites), backed by the capability file of s3caps (s3.h).
// Internal to common/storage/s3.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "common/storage/s3/s3.h"

namespace pgvault::s3 {

class CondWrites {
 public:
  // capability_file: S3Options::capability_file ("" = s3caps::default_file(), "none" = this process
  // only). The file is read on the first get(), not here.
  CondWrites(std::string capability_file, std::string endpoint_id, std::string bucket);

  // Loaded once per process from the capability file, then shared by every thread.
  s3caps::Cond get();
  // Records a new answer (and writes it to the file when it changed); logs once when the store turns
  // out not to support conditional writes.
  void learned(s3caps::Cond cond);

 private:
  std::string option_;
  std::string endpoint_id_;
  std::string bucket_;
  std::once_flag once_;
  std::atomic<s3caps::Cond> cond_{s3caps::Cond::Unknown};
  std::string file_;
};

}  // namespace pgvault::s3
