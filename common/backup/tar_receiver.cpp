#include "common/backup/tar_receiver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "common/backup/block_forms.h"
#include "common/base/errors.h"
#include "common/base/hex.h"
#include "common/pg/relpath.h"

namespace pgvault {

namespace {

// The value of `text` when it is in crc32c_hex() form (8 lowercase digits); else nullopt.
std::optional<std::uint32_t> crc32c_value(const std::string& text) {
  if (text.size() != 8) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : text) {
    const int d = hex_digit_value(c);
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<std::uint32_t>(d);
  }
  if (crc32c_hex(v) != text) return std::nullopt;  // upper case digits
  return v;
}

}  // namespace

ParentFiles::ParentFiles(const std::vector<ManifestFile>& files) {
  files_.reserve(files.size());
  for (const auto& f : files) {
    files_.push_back({f.path, f.tablespace, crc32c_value(f.crc32c), f.size});
  }
  // Stable: of a path listed twice the first entry is found, as std::map::emplace kept it.
  std::stable_sort(files_.begin(), files_.end(), [](const ParentFile& a, const ParentFile& b) {
    return std::tie(a.tablespace, a.path) < std::tie(b.tablespace, b.path);
  });
}

const ParentFile* ParentFiles::find(std::uint32_t tablespace, const std::string& path) const {
  auto it = std::lower_bound(files_.begin(), files_.end(), std::tie(tablespace, path),
                             [](const ParentFile& f, const auto& key) { return std::tie(f.tablespace, f.path) < key; });
  return it != files_.end() && it->tablespace == tablespace && it->path == path ? &*it : nullptr;
}

TarReceiver::TarReceiver(BackupManifest& m, BundleUploader& bundles, std::uint64_t bundle_size,
                         const IncrementalBase* inc)
    : m_(m), bundles_(bundles), bundle_size_(bundle_size), inc_(inc) {}

TarReceiver::~TarReceiver() = default;

void TarReceiver::BundleSink::write(ByteView data) {
  r_.bundles_.write(data);
  r_.stored_crc_.update(data);
  r_.offset_ += data.size();
}

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
// open bundle unless it would overflow it. Sets the current entry's bundle and offset.
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
  cur_.bundle = next_bundle_ - 1;
  cur_.offset = offset_;
}

// How the current file of an incremental backup is stored (see tar_receiver.h); places it when the
// form writes as the bytes arrive.
void TarReceiver::plan_incremental(const TarEntry& e) {
  const std::uint32_t bs = inc_->block_size;
  const std::string what = archive_ + ": " + e.path;
  if (inc_->server_mode) {
    auto stripped = strip_incremental_prefix(e.path);
    if (!stripped) return;
    if (!parse_relation_path(*stripped, tablespace_ != 0)) {
      throw Error(ErrorKind::Corruption, what + ": an incremental file that is not a relation file");
    }
    cur_.path = *stripped;
    form_ = Form::Converted;
    place_in_bundle(block_diff_bound(e.size / bs, bs));
    converter_ = std::make_unique<IncrementalFileConverter>(what, e.size, bs, sink_);
    return;
  }
  if (capture_) return;
  parent_entry_ = inc_->parent_files.find(tablespace_, e.path);
  if (!parent_entry_) return;
  auto rel = parse_relation_path(e.path, tablespace_ != 0);
  if (rel && e.size % bs == 0) {
    form_ = Form::Filtered;
    place_in_bundle(block_diff_bound(e.size / bs, bs));
    filter_ = std::make_unique<ChangedBlockFilter>(what, e.size, bs, parent_entry_->size, inc_->since_lsn,
                                                   rel->fork == RelFork::Fsm, sink_);
  } else if (!rel && e.size == parent_entry_->size && e.size <= kUnchangedBufferMax) {
    form_ = Form::Candidate;
  }
}

void TarReceiver::begin_entry(const TarEntry& e) {
  if (take_non_file(e)) return;
  cur_ = ManifestFile{};
  cur_.path = e.path;
  cur_.tablespace = tablespace_;
  cur_.size = e.size;
  cur_.mode = e.mode;
  cur_.mtime = e.mtime;
  received_path_ = e.path;
  in_file_ = true;
  received_ = 0;
  crc_ = Crc32c{};
  stored_crc_ = Crc32c{};
  capture_ = tablespace_ == 0 && (e.path == "backup_label" || e.path == "tablespace_map");
  captured_.clear();
  form_ = Form::Full;
  parent_entry_ = nullptr;
  if (inc_) plan_incremental(e);
  if (form_ == Form::Full) place_in_bundle(e.size);
}

void TarReceiver::entry_data(ByteView d) {
  if (!in_file_) return;  // content of a skipped entry
  crc_.update(d);
  if (capture_) captured_.append(reinterpret_cast<const char*>(d.data()), d.size());
  received_ += d.size();
  switch (form_) {
    case Form::Full: sink_.write(d); break;
    case Form::Converted: converter_->write(d); break;
    case Form::Filtered: filter_->write(d); break;
    case Form::Candidate: held_.insert(held_.end(), d.begin(), d.end()); break;
  }
}

// The stored form's end: kind, stored size and checksum of the entry.
void TarReceiver::end_stored_form() {
  switch (form_) {
    case Form::Full: cur_.crc32c = crc_.hex(); break;
    case Form::Converted:
    case Form::Filtered:
      if (converter_) cur_.size = converter_->finish();
      else filter_->finish();
      cur_.kind = FileKind::Blocks;
      cur_.stored_size = converter_ ? converter_->stored_bytes() : filter_->stored_bytes();
      cur_.crc32c = stored_crc_.hex();
      converter_.reset();
      filter_.reset();
      break;
    case Form::Candidate:
      cur_.crc32c = crc_.hex();
      if (parent_entry_->crc32c == crc_.value()) {
        cur_.kind = FileKind::Unchanged;
      } else {
        place_in_bundle(cur_.size);
        sink_.write(held_);
      }
      held_.clear();
      held_.shrink_to_fit();
      break;
  }
}

void TarReceiver::end_entry() {
  if (!in_file_) return;
  in_file_ = false;
  if (received_ != cur_.size) {
    throw Error(ErrorKind::Corruption, archive_ + ": " + cur_.path + " ended after " + std::to_string(received_) +
                                           " of " + std::to_string(cur_.size) + " bytes");
  }
  received_files_.push_back({received_path_, tablespace_, crc_.value(), received_});
  end_stored_form();
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
