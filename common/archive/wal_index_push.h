// Internal to common/archive (push.cpp): the WAL index of a segment wal-push stores (repo/wal_index.h),
// from the bytes the upload reads (a segment is read once; the scanner holds a few kilobytes).
#pragma once

#include <optional>
#include <string>

#include "common/base/io.h"
#include "common/pg/wal_records.h"
#include "common/repo/wal_index.h"

namespace pgvault {

// A Source that passes on what `inner` yields and scans it as the WAL segment `name` of `segment_size`
// bytes. A scan that fails (a record the reader refuses, an unknown WAL page magic) stops scanning and
// is remembered; it never fails the read.
class ScanningSource final : public Source {
 public:
  ScanningSource(Source& inner, const WalFileName& name, std::uint32_t segment_size, const std::string& what);
  std::size_t read(std::span<std::uint8_t> buf) override;
  // The index of the segment, or nullopt (with the reason in `why`) when the scan failed.
  std::optional<WalIndex> index(std::string& why) const;

 private:
  Source& inner_;
  WalFileName name_;
  WalScanner scanner_;
  std::string error_;
};

// Writes the index of segment `name` scanned by `scan` after the segment was stored. A scan that
// failed is logged as a warning and writes nothing (the segment is archived; planning falls back);
// a failed write throws (the push fails and PostgreSQL retries it).
void store_wal_index(Repository& repo, const WalFileName& name, const ScanningSource& scan);

// The same for a segment found already stored (a retried push): scans the file at `path` again.
void store_wal_index_of_file(Repository& repo, const WalFileName& name, const std::string& path,
                             std::uint32_t segment_size);

}  // namespace pgvault
