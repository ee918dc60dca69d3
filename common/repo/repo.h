// The repository: the Storage handle it owns, the marker, the identity file, the key record, and
// verified object reads and writes. Every object name comes from keys:: (common/repo/layout.h, which
// lists the layout); docs/FORMAT.md describes it.
//
// Threads. A Repository caches its identity, its marker check and its key on first use; what may run at
// once:
// - Any number of threads may call get_object(), get_bytes(), stored_digest(), claim_of(), read_key(),
//   describe(), config() and storage() at the same time, ONCE read_key() has returned in the thread that
//   owns the Repository (it loads and verifies the key; later calls only read the cache). pitr-prepare's
//   restore workers and archive-info --verify's workers share one Repository that way.
// - storage() may be used from any thread at any time: a Storage allows concurrent calls (storage.h).
//   The retention lock's heartbeat (lock.h) and base-push's bundle uploaders (backup_bundles.h, which
//   take their EncodeOptions from encode_options() before they start) use it directly.
// - Everything else stays in the owning thread and never runs while workers use the Repository:
//   initialised(), require_initialised(), initialise(), identity(), ensure_identity(), write_key(),
//   encode_options(), set_auto_threads(), put_object() and put_bytes() (they fill the caches). Workers
//   that write open a Repository of their own (wal-push's look-ahead, wal-fetch's prefetch).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>

#include "common/codec/codec.h"
#include "common/config/config.h"
#include "common/pg/wal.h"
#include "common/repo/layout.h"
#include "common/storage/factory.h"  // open_storage(), for the tools
#include "common/storage/storage.h"

namespace pgvault {

inline constexpr int kRepositoryFormat = 1;

// zstd's window for every object the repository encodes (encode_options: WAL segments and small objects
// through put_object, base-push's bundles, backup-copy's re-encoded objects): at most 512 KiB, level 1's
// own. At level 3 (2 MiB) that is 1.5 MiB less window and as much less compressor input buffer per
// segment encoding at once in wal-push (the S3 push worker encodes 4: its peak RSS went from ~35.5 to ~30 MiB), and 1.5 MiB
// less in wal-fetch's decoder, at every level. On 20 real pgbench segments the objects grew by 0.5% and
// wal-push used ~10% less CPU (a window that stays in cache); a 1 MiB window saved 1.7 MiB less RSS for
// 0.07%.
inline constexpr int kEncodeWindowLog = 19;

// zstd's hash and chain tables for every object the repository encodes (as above), at the double-fast
// levels (3 and 4): at most 2^14 entries each (level 3's own are 2^17 and 2^16), 128 KiB that stay in a
// core's cache. On 8+8 real 16 MiB segments (pgbench TPC-B, random hex text) at level 3, zstd -b: ~+25%
// (TPC-B) and ~+60% (hex) compression speed, objects +0.1% (TPC-B) and -1.0% (hex) in bytes. On a
// pgbench scale-50 base backup both caps together took base-push 0.85-0.9x of the time, with 2% fewer
// bytes stored and about half the peak RSS. Same frame format for readers.
inline constexpr int kEncodeTableLog = 14;

// Encoding permits shared by the threads of one process (Repository::set_encode_slots).
using EncodeSlots = std::counting_semaphore<>;

struct Identity {
  int format = kRepositoryFormat;
  std::uint64_t system_identifier = 0;
  int pg_version = 0;                     // major version, e.g. 15
  std::uint32_t wal_segment_size = 0;
  std::string created;                    // ISO 8601 UTC
};


// What Repository::initialise() found and did (repo-init's report).
struct InitResult {
  bool marker_created = false;  // false: the marker was there already
  bool legacy = false;          // the location held pgvault.json without a marker (an older pgvault's)
  std::string created;          // the marker's creation time (ISO 8601 UTC)
  // The key record: "created", "verified" (matches the configured key), "unchecked" (present, but no
  // key is configured), or "none" (no encryption configured, no record).
  std::string key_record = "none";
  bool changed() const { return marker_created || key_record == "created"; }
};
// repo-init's summary: one line of text, or a JSON object; `where` is Repository::describe().
std::string init_summary_text(const std::string& where, const InitResult& r);
std::string init_summary_json(const std::string& where, const InitResult& r);

class Repository {
 public:
  Repository(std::unique_ptr<Storage> storage, Config config);
  Storage& storage() { return *storage_; }
  const Config& config() const { return config_; }
  std::string describe() const { return storage_->describe(); }

  // Whether a repository exists at this location: its marker (written by repo-init) or, for repositories
  // made by older pgvault, its identity file. One GET of the identity (cached, and reused by
  // ensure_identity) and, only without one, one HEAD of the marker.
  bool initialised();
  // Every tool but repo-init calls this before it reads or writes anything: throws NotInitialised, naming
  // the location and repo-init, where no repository exists (an unmounted directory or a mistyped path or
  // bucket must neither become a new repository nor look like an empty one).
  void require_initialised();
  // repo-init: creates the marker (create-if-absent) and, when encryption is configured, the key record.
  // Idempotent: on an existing repository it changes nothing but verifies the configured key against
  // the key record (Auth error on mismatch; nothing is written then). The identity is not written here:
  // the first wal-push (or base-push) records the database system.
  InitResult initialise();

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
  // What every encoded object gets: the [compression] settings, the write key, and zstd's window and
  // tables capped (kEncodeWindowLog, kEncodeTableLog). [compression] threads = "auto" means the
  // auto_threads set here (default 0: the calling thread); a tool that encodes one object alone sets
  // more (wal-push).
  EncodeOptions encode_options();
  void set_auto_threads(int workers) { auto_threads_ = workers; }

  // Encodes everything `src` yields into `key` (committed atomically) with encode_options(). Returns the
  // plaintext digest.
  Digest put_object(const std::string& key, Source& src, const PutOptions& opts = {});
  // Bounds how many objects encode at once across the Repositories given the same `slots` (wal-push's
  // push worker keeps more files in flight than it encodes: on an object store a commit mostly waits
  // for the network and the store's settle time). put_object takes a slot before it encodes and gives
  // it back as the encoded object's commit starts (or on failure). nullptr (the default): no bound.
  void set_encode_slots(EncodeSlots* slots) { encode_slots_ = slots; }
  // Reads and decodes `key` into `out`; everything verified before out.finish() is called.
  Digest get_object(const std::string& key, Sink& out);
  // Small objects.
  void put_bytes(const std::string& key, ByteView plaintext, const PutOptions& opts = {});
  Bytes get_bytes(const std::string& key);
  // The same as a string, for large texts (a manifest at tens of thousands of files is tens of MiB): the
  // plaintext is gathered in chunks and copied once, so it costs at most twice its size, where a vector
  // grown by doubling and a copy into a string cost up to three times (four when the copy went through a
  // temporary).
  std::string get_text(const std::string& key);
  // The digest recorded in an object's trailer, without reading its body (a claim; see codec.h): the
  // plaintext SHA-256, or for an encrypted object of format 2 a keyed claim (`keyed` set), which only
  // claim_of() can reproduce. Never compare it with a plaintext digest directly.
  Digest stored_digest(const std::string& key);
  // The claim the trailer of an object stored under `key` with plaintext digest `plain` carries:
  // `plain` itself, or when `keyed` (take it from stored_digest) its keyed form under this repository's
  // key (Auth error when no key is configured). `stored_digest(key) == claim_of(key, d, stored.keyed)`
  // says "same content" without downloading the object.
  Digest claim_of(const std::string& key, const Digest& plain, bool keyed);

 private:
  std::unique_ptr<Storage> storage_;
  Config config_;
  std::optional<std::optional<Identity>> identity_;
  std::optional<MasterKey> key_;
  bool key_loaded_ = false;
  int auto_threads_ = 0;
  EncodeSlots* encode_slots_ = nullptr;
  bool key_verified_ = false;
  bool initialised_ = false;
  const MasterKey* load_key(bool create_record);
  std::string init_key_record();
};

std::string now_iso8601();

}  // namespace pgvault
