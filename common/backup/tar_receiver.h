// The receiving end of BASE_BACKUP's tar archives: each file's bytes go into bundles (a file larger
// than the bundle size gets a bundle of its own; otherwise it goes into the open bundle unless it
// would overflow it) with its CRC-32C computed on the way; directories go into the manifest, and
// backup_label and tablespace_map are also kept as text in it. pg_tblspc links of the data directory
// are collected for a check against the server's tablespace list; other links and entry types are
// skipped with a warning.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/pg/crc32c.h"
#include "common/pg/tar.h"
#include "common/repo/backup_bundles.h"
#include "common/repo/manifest.h"

namespace pgvault {

class TarReceiver final : public TarHandler {
 public:
  TarReceiver(BackupManifest& m, BundleUploader& bundles, std::uint64_t bundle_size)
      : m_(m), bundles_(bundles), bundle_size_(bundle_size) {}

  // The next archive's entries belong to `tablespace` (0: the data directory); `name` is for messages.
  void start_archive(std::uint32_t tablespace, std::string name) {
    tablespace_ = tablespace;
    archive_ = std::move(name);
  }
  std::uint64_t bytes() const { return bytes_; }
  // pg_tblspc/<oid> -> target, from the data directory's archive.
  const std::map<std::uint32_t, std::string>& tablespace_links() const { return links_; }

  void begin_entry(const TarEntry& e) override;
  void entry_data(ByteView d) override;
  void end_entry() override;

 private:
  // False for an entry that is not a regular file (recorded or skipped here).
  bool take_non_file(const TarEntry& e);
  void place_in_bundle(std::uint64_t size);

  BackupManifest& m_;
  BundleUploader& bundles_;
  std::uint64_t bundle_size_;
  std::uint32_t tablespace_ = 0;
  std::string archive_;
  std::uint64_t next_bundle_ = 0;
  std::uint64_t offset_ = 0;
  bool dedicated_ = false;
  bool in_file_ = false;
  ManifestFile cur_;
  std::uint64_t received_ = 0;
  Crc32c crc_;
  bool capture_ = false;
  std::string captured_;
  std::uint64_t bytes_ = 0;
  std::map<std::uint32_t, std::string> links_;
};

}  // namespace pgvault
