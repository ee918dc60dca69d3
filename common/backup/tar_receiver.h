// The receiving end of BASE_BACKUP's tar archives: each file's bytes go into bundles (a file larger
// than the bundle size gets a bundle of its own; otherwise it goes into the open bundle unless it
// would overflow it) with its CRC-32C computed on the way; directories go into the manifest, and
// backup_label and tablespace_map are also kept as text in it. pg_tblspc links of the data directory
// are collected for a check against the server's tablespace list; other links and entry types are
// skipped with a warning.
//
// For an incremental backup (IncrementalBase) a file is stored in one of three forms (manifest.h FileKind):
//  server mode: INCREMENTAL.<name> files become block-diff entries of <name> (IncrementalFileConverter);
//               every other file is stored whole.
//  client mode: a relation file the parent has becomes a block-diff entry of its changed blocks
//               (ChangedBlockFilter); a relation file the parent lacks is stored whole; any other file of
//               the parent's size up to kUnchangedBufferMax is held in memory until its end and stored
//               Unchanged when its CRC-32C equals the parent's, else whole; larger ones whole.
// Memory per file in flight: one block-diff chunk, one block, an INCREMENTAL header's block numbers, or
// at most kUnchangedBufferMax bytes (block_forms.h).
// received_files() keeps every file as the server sent it (INCREMENTAL.* names, their bytes' size and
// CRC-32C) for the check against the server's backup_manifest: a ReceivedFile each, path, tablespace,
// size and the CRC-32C as a number (about 48 bytes and the path, not a ManifestFile's ~200).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/pg/crc32c.h"
#include "common/pg/tar.h"
#include "common/repo/backup_bundles.h"
#include "common/repo/manifest.h"

namespace pgvault {

class IncrementalFileConverter;
class ChangedBlockFilter;

inline constexpr std::uint64_t kUnchangedBufferMax = 1u << 20;

// A file as the server sent it: what the check against the server's backup_manifest needs.
struct ReceivedFile {
  std::string path;
  std::uint32_t tablespace = 0;
  std::uint32_t crc32c = 0;  // CRC-32C of the bytes received (the value; crc32c_hex() gives the text)
  std::uint64_t size = 0;
};

// A parent's file as client mode uses it: its size, and its CRC-32C when the parent's manifest has one
// in crc32c_hex() form (any other text never matches, as a text comparison would not).
struct ParentFile {
  std::string path;
  std::uint32_t tablespace = 0;
  std::optional<std::uint32_t> crc32c;
  std::uint64_t size = 0;
};

// The parent's files sorted by (tablespace, path), looked up by binary search: a sorted vector of
// ParentFile costs ~56 bytes and the path per file, a std::map of whole ManifestFile entries ~250 and
// the path twice.
class ParentFiles {
 public:
  ParentFiles() = default;
  explicit ParentFiles(const std::vector<ManifestFile>& files);
  // Null when the parent has no such file.
  const ParentFile* find(std::uint32_t tablespace, const std::string& path) const;
  std::size_t size() const { return files_.size(); }

 private:
  std::vector<ParentFile> files_;
};

// What an incremental backup is taken against.
struct IncrementalBase {
  bool server_mode = false;         // INCREMENTAL files from the server; else client-side block filtering
  std::uint32_t block_size = 8192;  // the server's block_size
  std::uint64_t since_lsn = 0;      // the parent's start LSN
  ParentFiles parent_files;         // client mode: the parent's files
};

class TarReceiver final : public TarHandler {
 public:
  // `inc` (may be null: a full backup) must outlive the receiver.
  TarReceiver(BackupManifest& m, BundleUploader& bundles, std::uint64_t bundle_size,
              const IncrementalBase* inc = nullptr);
  ~TarReceiver() override;

  // The next archive's entries belong to `tablespace` (0: the data directory); `name` is for messages.
  void start_archive(std::uint32_t tablespace, std::string name) {
    tablespace_ = tablespace;
    archive_ = std::move(name);
  }
  // pg_tblspc/<oid> -> target, from the data directory's archive.
  const std::map<std::uint32_t, std::string>& tablespace_links() const { return links_; }
  // Every file as received (path, tablespace, size, crc32c of the bytes the server sent).
  const std::vector<ReceivedFile>& received_files() const { return received_files_; }

  void begin_entry(const TarEntry& e) override;
  void entry_data(ByteView d) override;
  void end_entry() override;

 private:
  enum class Form { Full, Converted, Filtered, Candidate };
  // Writes into the open bundle, counting the bytes and their CRC-32C.
  class BundleSink final : public Sink {
   public:
    explicit BundleSink(TarReceiver& r) : r_(r) {}
    void write(ByteView data) override;
    void finish() override {}
   private:
    TarReceiver& r_;
  };
  // False for an entry that is not a regular file (recorded or skipped here).
  bool take_non_file(const TarEntry& e);
  void place_in_bundle(std::uint64_t size);
  void plan_incremental(const TarEntry& e);
  void end_stored_form();

  BackupManifest& m_;
  BundleUploader& bundles_;
  std::uint64_t bundle_size_;
  const IncrementalBase* inc_;
  std::uint32_t tablespace_ = 0;
  std::string archive_;
  std::uint64_t next_bundle_ = 0;
  std::uint64_t offset_ = 0;
  bool dedicated_ = false;
  bool in_file_ = false;
  ManifestFile cur_;
  std::string received_path_;
  std::uint64_t received_ = 0;
  Crc32c crc_;
  Crc32c stored_crc_;
  Form form_ = Form::Full;
  BundleSink sink_{*this};
  std::unique_ptr<IncrementalFileConverter> converter_;
  std::unique_ptr<ChangedBlockFilter> filter_;
  const ParentFile* parent_entry_ = nullptr;
  Bytes held_;
  bool capture_ = false;
  std::string captured_;
  std::map<std::uint32_t, std::string> links_;
  std::vector<ReceivedFile> received_files_;
};

}  // namespace pgvault
