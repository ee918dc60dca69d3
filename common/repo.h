// The repository: layout (the one place that builds storage keys), the identity file, the key record,
// and verified object reads and writes. See docs/FORMAT.md for the layout.
//
//   pgvault.json                      identity: format, system identifier, PostgreSQL version, segment size
//   pgvault.key.json                  key record: key check and KDF parameters (when encryption is used)
//   wal/<first 16 hex>/<segment>      WAL segments, .partial and .backup files
//   wal/<TTTTTTTT>.history            timeline history files
//   backups/<label>/...               one base backup; manifest.json written last
//
// Threads: a Repository caches its identity and key on first use, so it is used by one thread at a
// time, with one exception: once read_key() has returned, get_object(), get_bytes(), stored_digest()
// and storage() (a Storage may be shared, see storage.h) may be called from several threads at once
// (pitr-prepare's restore workers and archive-info --verify share one Repository that way). Everything
// else (identity(), ensure_identity(), write_key(), encode_options(), set_auto_threads(), put_object(),
// put_bytes()) stays in one thread; workers that write open a Repository of their own (wal-push's
// look-ahead, wal-fetch's prefetch) or use the Storage directly (base-push's bundle uploaders).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/codec.h"
#include "common/config.h"
#include "common/storage.h"
#include "common/wal.h"

namespace pgvault {

inline constexpr int kRepositoryFormat = 1;

struct Identity {
  int format = kRepositoryFormat;
  std::uint64_t system_identifier = 0;
  int pg_version = 0;                     // major version, e.g. 15
  std::uint32_t wal_segment_size = 0;
  std::string created;                    // ISO 8601 UTC
};

namespace keys {
std::string identity();
std::string key_record();
std::string wal(const WalFileName& name);
std::string wal_prefix();                                  // "wal/"
std::string backups_prefix();                              // "backups/"
std::string backup_prefix(const std::string& label);       // "backups/<label>/"
std::string backup_manifest(const std::string& label);
std::string backup_bundle(const std::string& label, std::uint64_t index);
std::string lock(const std::string& name);                 // "locks/<name>"
}  // namespace keys

// Opens the configured backend ("fs" or "s3").
std::unique_ptr<Storage> open_storage(const Config& config);

class Repository {
 public:
  Repository(std::unique_ptr<Storage> storage, Config config);
  Storage& storage() { return *storage_; }
  const Config& config() const { return config_; }
  std::string describe() const { return storage_->describe(); }

  // The identity, or nullopt for a repository nothing was pushed to yet.
  std::optional<Identity> identity();
  // Creates the identity from `proposed` unless one exists (atomic create-if-absent), and returns the
  // stored one. Throws Foreign when the stored system identifier differs from proposed's.
  Identity ensure_identity(const Identity& proposed);

  // The key for reading: nullptr when no key_file/passphrase_file is configured. Verified against the key
  // record (Auth error on mismatch) the first time.
  const MasterKey* read_key();
  // The key for writing: nullptr when [encryption] method is "none". Creates the key record on first use.
  const MasterKey* write_key();
  // What put_object encodes with. [compression] threads = "auto" means the auto_threads set here
  // (default 0: the calling thread); a tool that encodes one object alone sets more (wal-push).
  EncodeOptions encode_options();
  void set_auto_threads(int workers) { auto_threads_ = workers; }

  // Encodes everything `src` yields into `key` (committed atomically). Returns the plaintext digest.
  Digest put_object(const std::string& key, Source& src, const PutOptions& opts = {});
  // Reads and decodes `key` into `out`; everything verified before out.finish() is called.
  Digest get_object(const std::string& key, Sink& out);
  // Small objects.
  void put_bytes(const std::string& key, ByteView plaintext, const PutOptions& opts = {});
  Bytes get_bytes(const std::string& key);
  // The plaintext digest recorded in an object's trailer, without reading its body (a claim; see codec.h).
  Digest stored_digest(const std::string& key);

 private:
  std::unique_ptr<Storage> storage_;
  Config config_;
  std::optional<std::optional<Identity>> identity_;
  std::optional<MasterKey> key_;
  bool key_loaded_ = false;
  int auto_threads_ = 0;
  bool key_verified_ = false;
  const MasterKey* load_key(bool create_record);
};

std::string now_iso8601();

}  // namespace pgvault
