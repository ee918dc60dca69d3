// Local filesystem primitives: the only code that calls open/write/fsync/rename directly.
// Every failure becomes an Error through errno_error() (ENOENT -> NotFound, others -> Io).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/base/io.h"

namespace pgvault {

// An open file descriptor that is closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Closes and reports a failed close() (data may not have been written).
  void close(const std::string& path);

 private:
  int fd_ = -1;
};

Fd open_read(const std::string& path);
// Writes all of data, retrying on EINTR and short writes.
void write_full(int fd, ByteView data, const std::string& path);
// fsync(2), retried on EINTR; `call`, when given, is called instead (sync_calls().fsync, fs_sync.h: the
// seam where tests inject failures).
void fsync_fd(int fd, const std::string& path, int (*call)(int) = nullptr);
// Starts writing the file's dirty pages back without waiting (sync_file_range SYNC_FILE_RANGE_WRITE where
// the system has it), those of `bytes` bytes from `offset` (0 bytes: to the end of the file). Best
// effort, never an error: it makes nothing durable, a later fsync or syncfs does.
void start_writeback(int fd, std::uint64_t offset = 0, std::uint64_t bytes = 0);
void fsync_dir(const std::string& dir);
// mkdir -p; each directory it creates gets exactly `mode` (whatever the umask) and is made durable (its
// parent fsynced). Existing directories are left as they are.
void make_dirs(const std::string& dir, unsigned mode = 0750);
// Whether `path` is a directory (following symlinks); false when it does not exist or cannot be seen.
bool is_dir(const std::string& path);
std::string parent_dir(const std::string& path);
std::string base_name(const std::string& path);

// A Source reading a file (optionally a byte range of it).
class FileSource final : public Source {
 public:
  explicit FileSource(const std::string& path, std::uint64_t offset = 0,
                      std::optional<std::uint64_t> length = std::nullopt);
  std::size_t read(std::span<std::uint8_t> buf) override;
  std::uint64_t file_size() const { return size_; }

 private:
  std::string path_;
  Fd fd_;
  std::uint64_t size_ = 0;
  std::uint64_t pos_ = 0;
  std::uint64_t end_ = 0;
};

// Writes a file durably and atomically: a temp file (O_CREAT|O_EXCL, exactly `mode` whatever the umask)
// beside `path`, fsync, rename (or,
// with no_replace, an atomic no-overwrite rename that fails with Duplicate), fsync the directory.
// Destroyed without commit(), the temp file is removed. With durable = false the fsyncs are skipped
// (wal-fetch output: PostgreSQL re-fetches after a crash). `tmp`, when given, is the temp file's path
// (it must be in the directory of `path` and start with kTempPrefix); the fs backend names its own.
class AtomicFileWriter final : public ObjectWriter {
 public:
  AtomicFileWriter(std::string path, bool no_replace, bool durable = true, unsigned mode = 0640,
                   std::string tmp = {});
  ~AtomicFileWriter() override;
  void write(ByteView data) override;
  void commit() override;
  void abort() noexcept override;

 private:
  std::string path_;
  std::string tmp_;
  bool no_replace_;
  bool durable_;
  Fd fd_;
  bool done_ = false;
  int slot_ = -1;  // where remove_temp_files_on_signal() finds tmp_
  std::vector<std::uint8_t> buf_;
  std::uint64_t written_ = 0;  // bytes in the file so far
  void flush();
  void put(ByteView data);
};

// The prefix of temporary files, so listings skip them and garbage collection finds them. An
// AtomicFileWriter's temporary file is "<prefix><target name>.<pid>.<counter>.<random hex>".
inline constexpr const char* kTempPrefix = ".pgvault-tmp.";

// Makes SIGTERM and SIGINT remove the temporary files of every AtomicFileWriter still open in this
// process, then end the process by the same signal (default action), so the parent sees exactly what it
// would have seen without the handler (PostgreSQL treats a restore_command killed by SIGTERM as part of
// its own shutdown). Up to 32 writers at once are tracked; files of further ones are left to
// remove_stale_temp_files(). Call once, early in main().
void remove_temp_files_on_signal();

// Removes the temporary files of AtomicFileWriters in `dir` whose process is gone: the pid in the name
// names no running process (kill(pid, 0) fails with ESRCH). A file of a running process, of this
// process, or whose name does not parse is left alone. Best effort: errors are ignored. Returns how
// many files were removed.
int remove_stale_temp_files(const std::string& dir);

}  // namespace pgvault
