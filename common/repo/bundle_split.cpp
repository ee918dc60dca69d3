#include "common/repo/bundle_split.h"

#include <algorithm>

#include "common/base/errors.h"

namespace pgvault {

namespace {
// By offset; at one offset an empty file comes before the file whose bytes start there.
bool by_offset(const ManifestFile* a, const ManifestFile* b) {
  return a->offset != b->offset ? a->offset < b->offset : a->bundle_bytes() < b->bundle_bytes();
}
}  // namespace

void sort_bundle_files(std::vector<const ManifestFile*>& v, const std::string& label, std::uint64_t bundle) {
  std::stable_sort(v.begin(), v.end(), by_offset);
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i]->offset < v[i - 1]->offset + v[i - 1]->bundle_bytes()) {
      throw Error(ErrorKind::Corruption, "backup " + label + ": files " + v[i - 1]->path + " and " + v[i]->path +
                                             " overlap in bundle " + std::to_string(bundle));
    }
  }
}

BundleSplitter::BundleSplitter(std::vector<const ManifestFile*> files, BundleVisitor& visitor)
    : files_(std::move(files)), visitor_(visitor) {
  std::stable_sort(files_.begin(), files_.end(), by_offset);
}

BundleSplitter::~BundleSplitter() = default;

void BundleSplitter::write(ByteView data) {
  while (true) {
    settle_empty_files();
    if (data.empty()) return;
    if (idx_ >= files_.size()) {
      std::uint64_t at = pos_;
      pos_ += data.size();
      visitor_.on_extra(at);
      return;
    }
    const ManifestFile& f = *files_[idx_];
    if (pos_ < f.offset) {  // bytes between files: not expected, but not ours to interpret
      std::uint64_t n = std::min<std::uint64_t>(f.offset - pos_, data.size());
      pos_ += n;
      data = data.subspan(n);
      continue;
    }
    if (!open_) begin(f);
    std::uint64_t n = std::min<std::uint64_t>(f.offset + f.bundle_bytes() - pos_, data.size());
    ByteView part = data.first(n);
    hash_->update(part);
    visitor_.on_data(f, part);
    pos_ += n;
    data = data.subspan(n);
    if (pos_ == f.offset + f.bundle_bytes()) end(f);
  }
}

void BundleSplitter::finish() {
  settle_empty_files();
  if (idx_ < files_.size()) visitor_.on_truncated(pos_, *files_[idx_]);
}

void BundleSplitter::settle_empty_files() {
  while (idx_ < files_.size() && files_[idx_]->bundle_bytes() == 0 && pos_ >= files_[idx_]->offset) {
    begin(*files_[idx_]);
    end(*files_[idx_]);
  }
}

void BundleSplitter::begin(const ManifestFile& f) {
  hash_ = std::make_unique<FileChecksum>(f);
  open_ = true;
  visitor_.on_begin(f);
}

void BundleSplitter::end(const ManifestFile& f) {
  std::string mismatch = hash_->mismatch();
  hash_.reset();
  visitor_.on_end(f, mismatch);
  open_ = false;
  ++idx_;
}

}  // namespace pgvault
