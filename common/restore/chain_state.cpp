// ChainState, ChainVisitor and the steps both ways of composing a chain's files share (chain_state.h).
#include "common/restore/chain_state.h"

#include <unistd.h>

#include "common/repo/layout.h"

namespace pgvault::restore_detail {

namespace {

// Where the last entry of each bundle of `m` ends (bytes after it are not the manifest's).
std::map<std::uint64_t, std::uint64_t> bundle_ends(const BackupManifest& m) {
  std::map<std::uint64_t, std::uint64_t> out;
  for (const auto& f : m.files) out[f.bundle] = std::max(out[f.bundle], f.offset + f.bundle_bytes());
  return out;
}

}  // namespace

ChainState::ChainState(const ChainPieces& pieces)
    : p(pieces),
      covers(pieces.files.size()),
      created(pieces.files.size(), 0),
      done(pieces.files.size(), 0),
      piped(pieces.files.size(), 0) {
  for (const auto* m : pieces.chain) ends.push_back(bundle_ends(*m));
}

void ChainVisitor::on_extra(std::uint64_t) {
  if (splitter_->position() > end_) {
    throw Error(ErrorKind::Corruption, "the bundle holds more bytes than the manifest's files (" +
                                           std::to_string(splitter_->position()) + " or more)");
  }
}

void ChainVisitor::on_truncated(std::uint64_t pos, const ManifestFile& f) {
  throw Error(ErrorKind::Corruption, "the bundle ended after " + std::to_string(pos) + " bytes, inside " + f.path);
}

void read_bundle(Repository& repo, const ChainState& st, std::size_t k, std::uint64_t idx,
                 std::vector<const ManifestFile*> entries, ChainVisitor& visitor) {
  const std::string& label = st.p.chain[k]->label;
  std::string key = keys::backup_bundle(label, idx);
  sort_bundle_files(entries, label, idx);
  BundleSplitter splitter(entries, visitor);
  visitor.attach(splitter, st.ends[k].at(idx));
  try {
    repo.get_object(key, splitter);
  } catch (...) {
    rethrow_in_bundle(label, key, visitor.current());
  }
}

void check_diff_header(const ManifestFile& e, const BlockDiffHeader& h, const ManifestFile* target) {
  if (h.file_blocks * h.block_size != e.size) {
    throw Error(ErrorKind::Corruption, "blocks entry describes " + std::to_string(h.file_blocks) + " blocks of " +
                                           std::to_string(h.block_size) + " bytes, the manifest says " +
                                           std::to_string(e.size) + " bytes");
  }
  if (target && e.size != target->size) {
    throw Error(ErrorKind::Corruption, "reconstructed file has " + std::to_string(e.size) +
                                           " bytes, the manifest says " + std::to_string(target->size));
  }
}

void truncate_to(int fd, std::uint64_t size, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw errno_error("truncate " + path, errno);
}

void finish_chain_file(ChainState& st, std::size_t idx, Fd& fd, const std::string& path) {
  const ManifestFile& target = *st.p.files[idx].target;
  std::uint64_t size = size_of(fd.get(), path);
  if (size != target.size) {
    throw Error(ErrorKind::Corruption, "reconstructed file has " + std::to_string(size) +
                                           " bytes, the manifest says " + std::to_string(target.size));
  }
  finish_file(fd, target, path);
  st.covers[idx].reset();
  st.done[idx] = 1;
  st.n.files++;
  st.n.bytes += size;
}

}  // namespace pgvault::restore_detail
