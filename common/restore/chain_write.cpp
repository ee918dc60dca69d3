// write_chain: an incremental backup restored straight from the repository. Backups of the chain are
// applied oldest first (each one after the previous has finished); within one backup its bundles are
// decoded in parallel (TaskGroup), each split (BundleSplitter) into the pieces it holds: a "full" entry is
// written as a new file, a "blocks" entry (block_diff.h) is applied to the file as the older backups left
// it: blocks at or past its truncation length dropped, the file set to its length (new blocks zero), the
// listed blocks written in place. Bundles holding no piece are not read.
//
// Verified: every bundle by its SHA-256 (the codec), every piece by the CRC-32C of its stored bytes,
// every block-diff's structure (BlockDiffReader) and length (file_blocks x block size = the entry's size),
// every reconstructed file's size against the newest manifest. A failure names the backup, the bundle
// and the file.
//
// Memory: the manifests of the chain and one plan entry per file of the newest backup, plus per worker
// thread one bundle's decoding buffers and one block-diff chunk (64 block numbers, one block): bounded
// whatever the database size; chain length is bounded by kMaxChainLength.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <unordered_map>

#include "common/base/errors.h"
#include "common/base/progress.h"
#include "common/base/task_group.h"
#include "common/repo/block_diff.h"
#include "common/repo/bundle_split.h"
#include "common/restore/restore_steps.h"

namespace pgvault::restore_detail {

namespace {

struct Counters {
  std::atomic<std::uint64_t> files{0};
  std::atomic<std::uint64_t> bytes{0};  // sizes of the files completed
  std::atomic<std::uint64_t> read{0};   // bytes of pieces processed (progress)
};

void pwrite_full(int fd, ByteView data, std::uint64_t at, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw errno_error("write " + path, n < 0 ? errno : EIO);
    data = data.subspan(static_cast<std::size_t>(n));
    at += static_cast<std::uint64_t>(n);
  }
}

void truncate_to(int fd, std::uint64_t size, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw errno_error("truncate " + path, errno);
}

std::uint64_t size_of(int fd, const std::string& path) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) throw errno_error("stat " + path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

// Applies the pieces of one bundle of backup `k` of the chain as the splitter hands them over.
class PieceVisitor final : public BundleVisitor {
 public:
  PieceVisitor(const ChainPieces& p, std::size_t k, const std::vector<Piece>& pieces, const RestoreDest& dest,
               const TaskGroup& group, Counters& n)
      : p_(p), k_(k), dest_(dest), group_(group), n_(n) {
    for (const auto& piece : pieces) file_of_[piece.entry] = piece.file;
  }
  void attach(const BundleSplitter& s, std::uint64_t bundle_end) {
    splitter_ = &s;
    end_ = bundle_end;
  }
  std::string current() const { return splitter_ && splitter_->current() ? splitter_->current()->path : ""; }

  void on_begin(const ManifestFile& e) override {
    check_stop();
    file_ = &p_.files.at(file_of_.at(&e));
    auto [root, rel] = dest_.dest(*file_->target);
    path_ = root + "/" + rel;
    bool base = e.kind == FileKind::Full;
    fd_ = open_file_beneath(root, rel, base);
    diff_.reset();
    if (!base) {
      diff_ = std::make_unique<BlockDiffReader>(
          "blocks entry", [this, &e](const BlockDiffHeader& h) { apply_header(e, h); },
          [this](std::uint32_t n, ByteView block) { pwrite_full(fd_.get(), block, std::uint64_t{n} * block_size_, path_); });
    }
  }

  void on_data(const ManifestFile&, ByteView part) override {
    check_stop();
    if (diff_) diff_->write(part);
    else write_full(fd_.get(), part, path_);
    n_.read += part.size();
  }

  void on_end(const ManifestFile& e, const std::string& mismatch) override {
    if (!mismatch.empty()) {
      throw Error(ErrorKind::Corruption, std::string(e.kind == FileKind::Blocks ? "changed blocks" : "content") +
                                             " fail verification: " + mismatch);
    }
    if (diff_) diff_->finish();
    if (k_ == file_->last) {
      std::uint64_t size = size_of(fd_.get(), path_);
      if (size != file_->target->size) {
        throw Error(ErrorKind::Corruption, "reconstructed file has " + std::to_string(size) +
                                               " bytes, the manifest says " + std::to_string(file_->target->size));
      }
      finish_file(fd_, *file_->target, path_);
      n_.files++;
      n_.bytes += size;
    } else {
      fd_.close(path_);
    }
  }

  void on_extra(std::uint64_t) override {
    if (splitter_->position() > end_) {
      throw Error(ErrorKind::Corruption, "the bundle holds more bytes than the manifest's files (" +
                                             std::to_string(splitter_->position()) + " or more)");
    }
  }

  void on_truncated(std::uint64_t pos, const ManifestFile& f) override {
    throw Error(ErrorKind::Corruption, "the bundle ended after " + std::to_string(pos) + " bytes, inside " + f.path);
  }

 private:
  void check_stop() const {
    if (group_.stop_requested()) throw Error(ErrorKind::Interrupted, "stopped after another bundle failed");
  }

  // Blocks at or past the truncation length are dropped, then the file gets its new length.
  void apply_header(const ManifestFile& e, const BlockDiffHeader& h) {
    block_size_ = h.block_size;
    if (h.file_blocks * h.block_size != e.size) {
      throw Error(ErrorKind::Corruption, "blocks entry describes " + std::to_string(h.file_blocks) + " blocks of " +
                                             std::to_string(h.block_size) + " bytes, the manifest says " +
                                             std::to_string(e.size) + " bytes");
    }
    std::uint64_t keep = h.truncation_blocks * h.block_size;
    if (size_of(fd_.get(), path_) > keep) truncate_to(fd_.get(), keep, path_);
    truncate_to(fd_.get(), e.size, path_);
  }

  const ChainPieces& p_;
  const std::size_t k_;
  const RestoreDest& dest_;
  const TaskGroup& group_;
  Counters& n_;
  std::unordered_map<const ManifestFile*, std::size_t> file_of_;
  const BundleSplitter* splitter_ = nullptr;
  std::uint64_t end_ = 0;
  const FilePieces* file_ = nullptr;
  Fd fd_;
  std::string path_;
  std::unique_ptr<BlockDiffReader> diff_;
  std::uint64_t block_size_ = 0;
};

// Where the last entry of each bundle of `m` ends (bytes after it are not the manifest's).
std::map<std::uint64_t, std::uint64_t> bundle_ends(const BackupManifest& m) {
  std::map<std::uint64_t, std::uint64_t> out;
  for (const auto& f : m.files) out[f.bundle] = std::max(out[f.bundle], f.offset + f.bundle_bytes());
  return out;
}

// One task: bundle `idx` of backup `k`, its pieces applied.
void apply_bundle(Repository& repo, const ChainPieces& p, std::size_t k, std::uint64_t idx, std::uint64_t end,
                  const std::vector<Piece>& pieces, const RestoreDest& dest, const TaskGroup& group, Counters& n) {
  const std::string& label = p.chain[k]->label;
  std::string key = keys::backup_bundle(label, idx);
  std::vector<const ManifestFile*> entries;
  for (const auto& piece : pieces) entries.push_back(piece.entry);
  sort_bundle_files(entries, label, idx);
  PieceVisitor visitor(p, k, pieces, dest, group, n);
  BundleSplitter splitter(entries, visitor);
  visitor.attach(splitter, end);
  try {
    repo.get_object(key, splitter);
  } catch (...) {
    rethrow_in_bundle(label, key, visitor.current());
  }
}

}  // namespace

WriteTotals write_chain(Repository& repo, const RestorePlan& plan, const RestoreDest& dest, const RestoreOptions& opts) {
  std::vector<const BackupManifest*> chain;
  for (const auto& m : plan.chain) chain.push_back(&m);
  chain.push_back(&plan.backup);
  const ChainPieces p = plan_pieces(chain, dest);

  repo.read_key();  // load (and verify) the key once, before the threads share the repository
  TaskGroup group(opts.parallel > 0 ? opts.parallel : repo.config().backup.parallel);
  Counters n;
  Progress progress(opts.progress, "restoring " + plan.backup.label);
  progress.set_total(p.bytes);
  for (std::size_t k = 0; k < chain.size(); ++k) {
    const auto ends = bundle_ends(*chain[k]);
    std::vector<const std::pair<const std::uint64_t, std::vector<Piece>>*> bundles;
    for (const auto& entry : p.reads[k]) bundles.push_back(&entry);
    group.run(
        bundles.size(),
        [&](std::size_t i) {
          const auto& [idx, pieces] = *bundles[i];
          apply_bundle(repo, p, k, idx, ends.at(idx), pieces, dest, group, n);
        },
        [&] {
          progress.set_done(n.read.load());
          progress.tick();
        });
  }
  progress.clear();
  std::string label = label_without_incremental_lines(plan.backup.backup_label);
  write_small_file(dest.pgdata + "/backup_label", label, 0600);
  return {n.files.load() + 1, n.bytes.load() + label.size()};
}

}  // namespace pgvault::restore_detail
