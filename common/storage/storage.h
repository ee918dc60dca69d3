// The storage interface: every repository backend (fs, s3, and the test wrappers) implements it.
//
// Keys are '/'-separated relative paths built only by common/repo (no leading '/', no "..").
// Contracts every backend must keep:
// - put(): the returned writer streams the object; nothing is visible under the key until commit()
//   returns, and then the whole object is visible and durable (fs: fsync file + rename + fsync dir;
//   s3: the PUT or CompleteMultipartUpload succeeded). A writer destroyed without commit() leaves
//   nothing behind (best effort for s3 multipart: AbortMultipartUpload).
//   With PutOptions::if_absent, commit() throws ErrorKind::Duplicate when the key already exists
//   (atomically on fs and on S3 stores with conditional writes; on S3 stores without them: HEAD, PUT,
//   then a check that the stored object is this writer's bytes, see common/storage/s3/s3.h).
// - get(): throws ErrorKind::NotFound when the key does not exist, and any other failure with another
//   kind (Transient, Auth, Io...). Never returns a partial object as complete: a reader that cannot
//   deliver every byte throws.
// - get_tail(key, n): the last min(n, size) bytes of the object and its total size, both from ONE version
//   of the object (one open+fstat+pread on fs, one suffix-range GET on s3), so a concurrent overwrite
//   can never pair the size of one version with the bytes of another. NotFound when the key is missing.
//   The default reads the whole object through one get() (what the test doubles use); real backends
//   override it with a single small read.
// - head(): std::nullopt when the key does not exist; throws for every other failure.
// - list(prefix): every key starting with prefix, recursively, sorted by key.
// - remove(): deleting a missing key is not an error.
// Threads: a Storage object may be used from several threads at once (every call of every backend;
// backup workers, restore workers, archive-info --verify and the lock heartbeat share one). fs keeps
// no state between calls but an atomic flag; s3 takes a connection from a mutex-guarded pool per
// request. A writer returned by put() or a Source returned by get() is used by one thread at a time.
// A new backend, or a test wrapper, must keep this.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/io.h"

namespace pgvault {

struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t mtime = 0;  // seconds since the epoch, UTC (0 when unknown)
};

// The end of one version of an object (see get_tail()).
struct ObjectTail {
  Bytes bytes;              // the last min(n, size) bytes
  std::uint64_t size = 0;   // the size of the object these bytes end
};

// The checks of create-if-absent puts that their caller runs later (PutOptions::confirm_later). Where
// create-if-absent is an upload followed, after a settle time, by a check that the stored object is the
// writer's own (S3 without conditional writes: s3.h), commit() hands the check here instead of waiting
// for it, and the writer goes on with its next object. Until run() has returned, such an object is not
// known to be the caller's: nothing may name it before (base-push writes its manifest after). Stores
// that decide create-if-absent in one step add nothing. add() is thread-safe.
class DeferredConfirms {
 public:
  void add(std::function<void()> check);
  // Runs every check added so far, oldest first (each waits for its own settle time, mostly over by
  // then); the first that throws ends it with that error.
  void run();

 private:
  std::mutex mu_;
  std::vector<std::function<void()>> checks_;
};

struct PutOptions {
  bool if_absent = false;              // commit fails with Duplicate if the key exists
  std::optional<std::uint64_t> size;   // total size when known in advance (lets s3 pick PUT vs multipart)
  // if_absent only: where a store needs a later check of the put, it goes here (see DeferredConfirms)
  // and commit() returns before it; nullptr: commit() checks before it returns.
  DeferredConfirms* confirm_later = nullptr;
};

struct ByteRange {
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;  // to the end when empty
};

class Storage {
 public:
  virtual ~Storage() = default;
  // A short description for messages: "fs:/var/lib/pgvault/repo", "s3://bucket/prefix".
  virtual std::string describe() const = 0;

  virtual std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts = {}) = 0;
  virtual std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range = {}) = 0;
  virtual ObjectTail get_tail(const std::string& key, std::size_t n);
  virtual std::optional<ObjectInfo> head(const std::string& key) = 0;
  virtual std::vector<ObjectInfo> list(const std::string& prefix) = 0;
  virtual void remove(const std::string& key) = 0;
  // Deletes many keys; backends may batch (S3 DeleteObjects). Missing keys are not errors.
  virtual void remove_many(const std::vector<std::string>& keys) {
    for (const auto& k : keys) remove(k);
  }

  // Optional capabilities: what only a backend with files and directories has. The defaults suit a
  // store without either (s3, the test doubles), so callers use them without knowing the backend.
  // - list_temporaries(): the temporary files interrupted writes left anywhere in the store (invisible
  //   to list()), key = path under the root, with size and mtime. Default: none.
  // - remove_temporary(path): deletes one of them (missing is not an error; a path that does not name a
  //   temporary file is refused with Internal). Default: nothing to do.
  // - remove_empty_folder(prefix): removes the folder of keys `prefix` (ending in '/') when it is empty,
  //   best effort (never throws: a concurrent writer may fill it). Default: nothing to do.
  virtual std::vector<ObjectInfo> list_temporaries() { return {}; }
  virtual void remove_temporary(const std::string& /*path*/) {}
  virtual void remove_empty_folder(const std::string& /*prefix*/) {}

  // Backup capabilities (base-push asks these, never which backend it has).
  // atomic_create(): put() with if_absent is decided by the store in one step (fs: a no-replace link),
  // so a claim read back at once is final. False (the default) where create-if-absent may be
  // HEAD-then-PUT and another writer's PUT can still land after ours (S3 stores).
  virtual bool atomic_create() const { return false; }
  // create_confirmed(): a put with if_absent that returned was checked, after a settle time, to have
  // stored the writer's own object (an S3 store known to lack conditional writes: s3.h). Asked after
  // such a put (the first may be what found out). False (the default) where the store decided it alone
  // (atomic_create()) or was trusted with `If-None-Match` (a store that ignores it cannot be told apart).
  virtual bool create_confirmed() { return false; }
  // Removes the temporary files that provably dead writers left in the newest (by name) `max_dirs`
  // folders directly under `prefix`; returns how many. Best effort, never throws. The default does
  // nothing: a store whose unfinished uploads leave no temporary objects (S3, test doubles).
  virtual std::size_t sweep_dead_writers(const std::string& prefix, std::size_t max_dirs) {
    (void)prefix, (void)max_dirs;
    return 0;
  }
};

// Convenience: whole small objects.
Bytes read_all(Storage& storage, const std::string& key);
void write_all(Storage& storage, const std::string& key, ByteView data, const PutOptions& opts = {});

}  // namespace pgvault
