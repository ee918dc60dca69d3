// The WAL index wal-push writes (wal_index_push.h).
#include "common/archive/wal_index_push.h"

#include <spdlog/spdlog.h>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/repo/layout.h"

namespace pgvault {

namespace {
std::uint64_t start_of(const WalFileName& name, std::uint32_t segment_size) {
  return segment_number(name.log, name.seg, segment_size) * segment_size;
}
}  // namespace

ScanningSource::ScanningSource(Source& inner, const WalFileName& name, std::uint32_t segment_size,
                               const std::string& what)
    : inner_(inner), name_(name), scanner_(segment_size, start_of(name, segment_size), what) {}

std::size_t ScanningSource::read(std::span<std::uint8_t> buf) {
  const std::size_t n = inner_.read(buf);
  if (n > 0 && error_.empty() && !scanner_.done()) {
    try {
      scanner_.feed(ByteView(buf.data(), n));
    } catch (const Error& e) {
      error_ = e.what();
    }
  }
  return n;
}

std::optional<WalIndex> ScanningSource::index(std::string& why) const {
  if (!error_.empty()) {
    why = error_;
    return std::nullopt;
  }
  return make_wal_index(name_, scanner_.summary());
}

void store_wal_index(Repository& repo, const WalFileName& name, const ScanningSource& scan) {
  std::string why;
  std::optional<WalIndex> index = scan.index(why);
  if (!index) {
    spdlog::warn("{} is archived without a WAL index (recovery targets in it are planned without one): {}",
                 name.name, why);
    return;
  }
  write_wal_index(repo, name, *index);
  spdlog::debug("wrote the WAL index of {} ({} records, {} restore points)", name.name, index->records,
                index->restore_points.size());
}

void store_wal_index_of_file(Repository& repo, const WalFileName& name, const std::string& path,
                             std::uint32_t segment_size) {
  FileSource file(path);
  ScanningSource scan(file, name, segment_size, path);
  Bytes buf(256 << 10);
  while (scan.read(buf) > 0) {
  }
  store_wal_index(repo, name, scan);
}

}  // namespace pgvault
