// BundleSplitter: the one reader of a bundle's plaintext by the manifest's offsets (restore writes the
// files, archive-info --verify only checks them). A Sink: the decoded bundle is written into it.
//
// Contract:
// - `files` are the manifest's files of this bundle (any order: sorted here by offset, an empty file
//   before a file starting at the same offset); two that overlap are an error of sort_bundle_files().
// - For every file, in offset order: on_begin(f), on_data(f, part) zero or more times (the file's bytes
//   in order), on_end(f, mismatch) where mismatch is "" when the file's checksum (CRC-32C, SHA-256 in
//   format 1 manifests) matches, else e.g. "CRC-32C 1a2b3c4d, manifest says e3069283". Empty files get
//   begin and end at their offset. Bytes between files are skipped.
// - on_extra(pos): bytes past the last file (pos = offset of the first one); on_truncated(pos, f): the
//   bundle ended at pos inside (or before) file f. A visitor throws from these to stop, or records.
// - current(): the file being read (for messages), nullptr between files.
// Threads: one splitter per bundle, used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/io.h"
#include "common/repo/manifest.h"

namespace pgvault {

class BundleVisitor {
 public:
  virtual ~BundleVisitor() = default;
  virtual void on_begin(const ManifestFile& f) = 0;
  virtual void on_data(const ManifestFile& f, ByteView part) = 0;
  virtual void on_end(const ManifestFile& f, const std::string& mismatch) = 0;
  virtual void on_extra(std::uint64_t pos) = 0;
  virtual void on_truncated(std::uint64_t pos, const ManifestFile& inside) = 0;
};

// Sorts one bundle's files by offset and throws Corruption ("backup <label>: files a and b overlap in
// bundle <n>") when two overlap.
void sort_bundle_files(std::vector<const ManifestFile*>& files, const std::string& label, std::uint64_t bundle);

class BundleSplitter final : public Sink {
 public:
  BundleSplitter(std::vector<const ManifestFile*> files, BundleVisitor& visitor);
  ~BundleSplitter() override;
  void write(ByteView data) override;
  void finish() override;
  const ManifestFile* current() const { return open_ ? files_[idx_] : nullptr; }
  std::uint64_t position() const { return pos_; }

 private:
  void settle_empty_files();
  void begin(const ManifestFile& f);
  void end(const ManifestFile& f);

  std::vector<const ManifestFile*> files_;  // sorted by offset
  BundleVisitor& visitor_;
  std::size_t idx_ = 0;
  std::uint64_t pos_ = 0;
  bool open_ = false;
  std::unique_ptr<FileChecksum> hash_;
};

}  // namespace pgvault
