#include "common/backup/tar_receiver.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/base/errors.h"

namespace pgvault {

bool TarReceiver::take_non_file(const TarEntry& e) {
  switch (e.type) {
    case TarEntry::Type::Directory:
      m_.directories.push_back({e.path, tablespace_, e.mode});
      return true;
    case TarEntry::Type::Symlink:
      if (tablespace_ == 0 && e.path.rfind("pg_tblspc/", 0) == 0) {
        try {
          links_[static_cast<std::uint32_t>(std::stoul(e.path.substr(10)))] = e.link_target;
        } catch (const std::exception&) {
          spdlog::warn("{}: ignoring unexpected link {} -> {}", archive_, e.path, e.link_target);
        }
      } else {
        spdlog::warn("{}: ignoring symbolic link {} -> {} (PostgreSQL sends links only in pg_tblspc)", archive_,
                     e.path, e.link_target);
      }
      return true;
    case TarEntry::Type::Other:
      spdlog::warn("{}: ignoring tar entry {} of type '{}'", archive_, e.path, e.typeflag);
      return true;
    case TarEntry::Type::File: break;
  }
  return false;
}

// Placement: a file larger than the bundle size gets a bundle of its own; otherwise it goes into the
// open bundle unless it would overflow it.
void TarReceiver::place_in_bundle(std::uint64_t size) {
  if (size > bundle_size_) {
    bundles_.open(next_bundle_++, static_cast<std::size_t>(std::min<std::uint64_t>(bundle_size_, 8u << 20)), true);
    offset_ = 0;
    dedicated_ = true;
  } else if (!bundles_.is_open() || (offset_ > 0 && offset_ + size > bundle_size_)) {
    bundles_.open(next_bundle_++, static_cast<std::size_t>(bundle_size_), false);
    offset_ = 0;
    dedicated_ = false;
  }
}

void TarReceiver::begin_entry(const TarEntry& e) {
  if (take_non_file(e)) return;
  place_in_bundle(e.size);
  cur_ = ManifestFile{};
  cur_.path = e.path;
  cur_.tablespace = tablespace_;
  cur_.size = e.size;
  cur_.mode = e.mode;
  cur_.mtime = e.mtime;
  cur_.bundle = next_bundle_ - 1;
  cur_.offset = offset_;
  in_file_ = true;
  received_ = 0;
  crc_ = Crc32c{};
  capture_ = tablespace_ == 0 && (e.path == "backup_label" || e.path == "tablespace_map");
  captured_.clear();
}

void TarReceiver::entry_data(ByteView d) {
  if (!in_file_) return;  // content of a skipped entry
  crc_.update(d);
  bundles_.write(d);
  if (capture_) captured_.append(reinterpret_cast<const char*>(d.data()), d.size());
  offset_ += d.size();
  received_ += d.size();
  bytes_ += d.size();
}

void TarReceiver::end_entry() {
  if (!in_file_) return;
  in_file_ = false;
  if (received_ != cur_.size) {
    throw Error(ErrorKind::Corruption, archive_ + ": " + cur_.path + " ended after " + std::to_string(received_) +
                                           " of " + std::to_string(cur_.size) + " bytes");
  }
  cur_.crc32c = crc_.hex();
  if (capture_) {
    if (cur_.path == "backup_label") m_.backup_label = captured_;
    else m_.tablespace_map = captured_;
  }
  m_.files.push_back(std::move(cur_));
  if (dedicated_) {
    bundles_.close();
    dedicated_ = false;
  }
}

}  // namespace pgvault
