// The backup manifest: backups/<label>/manifest.json, written LAST by base-push (a backup without it is
// incomplete and invisible), stored as a codec object (digest-verified, encrypted when configured).
//
// Data layout: the files of a backup are packed into bundles (backups/<label>/bundle-NNNNNN). A bundle's
// plaintext is the concatenation of whole files, in manifest order; a file larger than the bundle size
// gets a bundle of its own. Each file records (bundle, offset, size) inside the bundle's plaintext and
// its own CRC-32C (the same checksum as the server's backup_manifest), so a restore verifies every file
// as well as every bundle (whose SHA-256 the object codec checks). Manifests written by pgvault before
// format 2 carry a per-file SHA-256 instead; they are still read and verified with it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/io.h"
#include "common/base/time.h"  // parse_iso8601 reads the manifest's times
#include "common/pg/crc32c.h"

namespace pgvault {

// 1: per-file "sha256"; 2: per-file "crc32c"; 3: incremental backups (file kinds, incremental_mode). A
// manifest is written as format 3 only when it needs it (an incremental backup), else 2. Readers accept all.
inline constexpr int kManifestFormat = 3;

// What a file entry stores (format 3; entries of a full backup are all Full):
//  Full       the whole content, in its bundle at its offset.
//  Unchanged  nothing: the content is the parent backup's (size and crc32c are the content's, copied
//             from the parent's entry); restore takes it from the chain.
//  Blocks     a block-diff entry (common/repo/block_diff.h) of `stored_size` bytes in its bundle, applied
//             to the file as the parent chain reconstructs it; `size` is the reconstructed file's size
//             and `crc32c` the CRC-32C of the stored block-diff bytes.
enum class FileKind { Full, Unchanged, Blocks };
std::string_view file_kind_name(FileKind k);  // "full", "unchanged", "blocks" (the JSON "kind")

struct ManifestFile {
  std::string path;              // relative to the data directory, or to the tablespace for tablespace files
  std::uint32_t tablespace = 0;  // 0 = the data directory; else the tablespace OID
  std::uint64_t size = 0;
  std::uint32_t mode = 0600;
  std::int64_t mtime = 0;
  std::string crc32c;            // CRC-32C of the content: crc32c_hex() (8 hex digits, big-endian value)
  std::uint64_t bundle = 0;      // bundle index
  std::uint64_t offset = 0;      // byte offset of the file in the bundle's plaintext
  std::string sha256;            // hex SHA-256 of the content: only in entries of format 1 manifests
  FileKind kind = FileKind::Full;
  std::uint64_t stored_size = 0; // Blocks: bytes of the block-diff entry in the bundle (size is the file's)

  // Bytes of this entry in its bundle's plaintext: size (Full), stored_size (Blocks), 0 (Unchanged).
  std::uint64_t bundle_bytes() const;
};

class Sha256;

// Checks a file's content against its manifest entry, with whichever checksum the entry has (CRC-32C,
// or SHA-256 for an entry of a format 1 manifest; both when it has both).
class FileChecksum {
 public:
  explicit FileChecksum(const ManifestFile& f);
  ~FileChecksum();
  FileChecksum(const FileChecksum&) = delete;
  FileChecksum& operator=(const FileChecksum&) = delete;
  void update(ByteView data);
  // Call once, after the last update(): "" when the content matches, else e.g.
  // "CRC-32C 1a2b3c4d, manifest says e3069283" (computed value first).
  std::string mismatch();

 private:
  const ManifestFile& f_;
  std::optional<Crc32c> crc_;
  std::unique_ptr<Sha256> sha_;
};

struct ManifestDirectory {
  std::string path;
  std::uint32_t tablespace = 0;
  std::uint32_t mode = 0700;
};

struct ManifestTablespace {
  std::uint32_t oid = 0;
  std::string location;  // absolute path on the backed-up server
};

struct ManifestBundle {
  std::uint64_t index = 0;
  std::uint64_t plain_size = 0;   // bytes of plaintext (sum of its files)
  std::uint64_t stored_size = 0;  // bytes in the repository (after compression/encryption)
  std::string sha256;             // plaintext SHA-256 (the trailer of an encrypted bundle holds its keyed form)
};

struct BackupManifest {
  int format = kManifestFormat;
  std::string label;               // e.g. "20261121T164100Z-F"; sorts by start time (UTC)
  std::string type = "full";       // "full" | "incremental"
  std::string parent;              // label of the parent backup (incremental only)
  // How an incremental's changed blocks were found: "server" (PostgreSQL 17+ INCREMENTAL files from
  // WAL summaries) or "client" (page LSNs newer than the parent's start); "" for a full backup.
  std::string incremental_mode;
  // The parent's start LSN and timeline when this incremental was taken (incremental only; 0: not
  // recorded, written before pgvault kept them): resolve_chain requires the parent under that label to be
  // that backup, whatever the mode (a client-side incremental's blocks are only right on top of it).
  std::uint64_t parent_start_lsn = 0;
  std::uint32_t parent_timeline = 0;
  std::uint32_t timeline = 1;
  std::uint64_t start_lsn = 0;
  std::uint64_t stop_lsn = 0;
  std::string start_wal;           // segment holding start_lsn
  std::string stop_wal;            // segment holding stop_lsn (archived before the manifest was written)
  std::string start_time;          // ISO 8601 UTC
  std::string stop_time;
  int pg_version = 0;
  std::uint64_t system_identifier = 0;
  std::uint32_t wal_segment_size = 16u << 20;
  std::string backup_label;        // contents of backup_label
  std::string tablespace_map;      // contents of tablespace_map ("" when none)
  bool server_manifest_verified = false;  // the server's backup_manifest checksums matched
  std::vector<ManifestTablespace> tablespaces;
  std::vector<ManifestDirectory> directories;
  std::vector<ManifestFile> files;
  std::vector<ManifestBundle> bundles;
  // Totals (derived, stored for listing without summing).
  std::uint64_t total_bytes = 0;   // database bytes (sum of file sizes)
  std::uint64_t stored_bytes = 0;  // repository bytes (sum of bundle stored sizes)

  // load_inventory keeps only the head of each manifest (every backup's file list held at once would grow
  // with backups x files): it clears `files` and records here how many entries there were. Code that
  // reads the entries takes the manifest from with_files (inventory.h); require_files() guards it.
  std::optional<std::uint64_t> files_dropped;
  std::uint64_t file_count() const { return files_dropped ? *files_dropped : files.size(); }
  // Internal error naming `use` when the entries were dropped: a head passed where the files are read
  // (a restore, a copy or a check of nothing must not pass as done).
  void require_files(const char* use) const;
  // Frees the file entries and their memory, recording their number in files_dropped.
  void drop_files();

  // The manifest's text (ManifestText's, whole). Internal error when the entries were dropped (a manifest
  // written without them would lose the backup).
  std::string to_json() const;
  // The text without the file entries ("files": []), whether they were dropped or not: two heads are the
  // same backup's when these and file_count() are equal.
  std::string head_json() const;
  // Corruption error naming `what` on malformed input, including a path that could write outside the data
  // directory or its tablespace location (manifest_path_problem), a tablespace location that is not an
  // absolute path without ".." components, and an entry of a tablespace the manifest does not list.
  static BackupManifest from_json(const std::string& text, const std::string& what);
};

// The manifest's text (to_json()'s) made as it is read, one file entry at a time: write_manifest
// (backups.h) streams it into the store, so neither a JSON tree of the file entries (about 0.6 KB per
// file) nor the whole text (about 0.25 KB per file) is ever held. The text is the same as a whole tree's
// dump(1). Internal error (at construction) when the entries were dropped, (from read()) at an entry
// without a checksum. `m` must outlive the source and stay unchanged while it is read.
class ManifestText final : public Source {
 public:
  explicit ManifestText(const BackupManifest& m);
  std::size_t read(std::span<std::uint8_t> buf) override;

 private:
  bool next_piece();  // the next file entry, or the tail; false at the end

  const BackupManifest& m_;
  std::string piece_;  // the text being read: the head up to the files, one entry, or the tail
  std::size_t taken_ = 0;
  std::size_t next_file_ = 0;
  std::string tail_;   // after the last entry; emptied once it is the piece
};

// Why `path` (a file or directory path from a manifest, relative to the data directory or to a tablespace
// location) could write outside its root: "" when it is safe, else e.g. "is an absolute path" or "has a
// \"..\" component". Safe means relative, with no empty, "." or ".." components and no NUL byte. A
// directory entry may also be "." (the root itself, which a restore skips).
std::string manifest_path_problem(const std::string& path, bool directory = false);

// Label for a backup starting now: "YYYYMMDDTHHMMSSZ-F" (full) or "-I" (incremental).
std::string make_backup_label(std::int64_t unix_time, bool incremental);

// Reading and writing a manifest in a repository, and listing the backups: common/repo/backups.h.

}  // namespace pgvault
