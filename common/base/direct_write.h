// Writing a large file past the page cache (O_DIRECT): pitr-prepare's large table files.
//
// A restore writes each byte once and reads none of it back: through the page cache every MiB first
// costs the kernel page allocation and a copy (on a VM whose freed memory goes back to the host, a
// fresh page also costs the host a fault: 1.3 s of system time for a 671 MB table, on the restore's
// critical path), and the cache fills with data that pushes out what the machine's other work reads.
// Written directly, the bytes go from one aligned buffer to the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <unistd.h>

#include "common/base/io.h"

namespace pgvault {

// Writes one file sequentially from offset 0, with O_DIRECT where its filesystem takes it. A filesystem
// that refuses O_DIRECT (tmpfs, some FUSE and network filesystems), or a direct write refused with
// EINVAL (an alignment the device does not take), makes it write the rest through the page cache, as
// write_full does; so is the file's tail past the last whole kAlign block. Durability is the caller's,
// as for any write: fsync or syncfs afterwards (a direct write's own error comes back at once).
// One file at a time; the buffer is kept for the next file.
class DirectFileWriter {
 public:
  static constexpr std::size_t kAlign = 4096;           // buffer address, offsets and lengths
  static constexpr std::size_t kBuffer = 4u << 20;      // one direct write
  DirectFileWriter();
  ~DirectFileWriter();
  DirectFileWriter(const DirectFileWriter&) = delete;
  DirectFileWriter& operator=(const DirectFileWriter&) = delete;

  // Starts the file `fd` (just created, opened for writing; `path` for messages); `direct`: try O_DIRECT.
  void start(int fd, std::string path, bool direct);
  void write(ByteView data);
  // Writes what is staged and the tail; O_DIRECT is off on fd again.
  void finish();
  // Whether the bytes are going past the page cache.
  bool direct() const { return direct_; }

  // The write(2) of the direct writes; tests replace it to refuse them or fail them.
  static inline ssize_t (*direct_write_call)(int fd, const void* buf, std::size_t n) = ::write;

 private:
  void flush_blocks();  // writes the whole blocks staged, directly
  void to_buffered();   // O_DIRECT off; writes what is staged through the page cache
  struct Free {
    void operator()(std::uint8_t* p) const;
  };
  std::unique_ptr<std::uint8_t, Free> buf_;
  std::size_t staged_ = 0;
  int fd_ = -1;
  std::string path_;
  bool direct_ = false;
};

}  // namespace pgvault
