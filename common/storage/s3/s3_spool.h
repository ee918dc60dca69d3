// Where a single-PUT body waits until commit(): an unnamed temporary file (O_TMPFILE, so nothing is
// left behind), hashed (SHA-256 and MD5) as it arrives, then sent from the file. Internal to
// common/storage/s3; the writer falls back to memory when the file cannot be made or written.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/base/io.h"
#include "common/storage/s3/sigv4.h"

namespace pgvault::s3 {

class UploadSpool {
 public:
  // dir: S3Options::spill_dir ("" = $TMPDIR, else /var/tmp). !active() when no file could be made.
  explicit UploadSpool(const std::string& dir);
  ~UploadSpool() { close(); }
  UploadSpool(const UploadSpool&) = delete;
  UploadSpool& operator=(const UploadSpool&) = delete;

  bool active() const { return fd_ >= 0; }
  // Appends to the file; false (nothing lost: size() bytes are in the file) when the write fails.
  bool append(ByteView data);
  // What was spooled, read back into memory; the spool is closed. `what` names the upload in errors.
  Bytes take_back(const std::string& what);
  // Finishes the digests: the body is size() bytes at fd(), from offset 0.
  void finish() { digests_->finish(); }
  int fd() const { return fd_; }
  std::uint64_t size() const { return size_; }
  const sigv4::BodyDigests& digests() const { return *digests_; }
  void close() noexcept;

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::optional<sigv4::BodyDigests> digests_;
};

}  // namespace pgvault::s3
