// write_chain: an incremental backup restored straight from the repository. The backups of the chain
// are applied NEWEST FIRST (each one after the newer ones have finished); within one backup its bundles
// are decoded in parallel (TaskGroup), each split (BundleSplitter) into the pieces it holds. The large
// files whose pieces have bundles of their own are not composed this way but pipelined, all their pieces
// decoded at once (chain_pipe.h), as tasks of the newest backup's pass. A file's
// newest piece creates it: a "full" entry is written whole (its only piece); a "blocks" entry
// (block_diff.h) sets the file to its final length (holes read as zeros) and writes its blocks. Each
// older piece then supplies only the blocks no newer piece supplied and no newer truncation removed
// (BlockCover, chain_compose.h): every block is written once, contiguous blocks in one pwrite
// (RunWriter). A file is finished (size checked, mode, mtime, fsync) after its base, or as soon as newer
// pieces supplied every block (its older pieces are then not read). Bundles holding no piece still
// needed are not read.
//
// Verified: every bundle by its SHA-256 (the codec), every piece read by the CRC-32C of its stored bytes,
// every block-diff's structure (BlockDiffReader), length (file_blocks x block size = the entry's size)
// and block size (the same in every piece of a file), every reconstructed file's size against the newest
// manifest. A failure names the backup, the bundle and the file.
//
// Memory: the manifests of the chain and one plan entry per file of the newest backup; per worker thread
// one bundle's decoding buffers, one block-diff chunk (64 block numbers, one block) and one RunWriter run
// (1 MiB); per pipelined file being composed, its pieces' queues and threads (chain_pipe.h, at most
// kPipeMaxPieces x 1.5 MiB); and the BlockCovers of the files being composed, one bit per block: the files are taken in
// batches of at most kCoverBudget bytes of covers (64 MiB, counted as one bit per KiB: up to 512 GiB of
// files rebuilt from block-diffs is one batch; more reads the chain's bundles once per batch). Bounded
// whatever the database size; chain length is bounded by kMaxChainLength.
#include <unistd.h>

#include <memory>
#include <unordered_map>

#include "common/base/errors.h"
#include "common/base/progress.h"
#include "common/base/task_group.h"
#include "common/repo/block_diff.h"
#include "common/repo/bundle_split.h"
#include "common/restore/chain_pipe.h"
#include "common/restore/chain_state.h"

namespace pgvault::restore_detail {

namespace {

// Bytes of BlockCovers alive at once (see the memory note above).
constexpr std::uint64_t kCoverBudget = 64ull << 20;

// Applies the pieces of one bundle of backup `k` of the chain as the splitter hands them over.
class PieceVisitor final : public ChainVisitor {
 public:
  PieceVisitor(ChainState& st, std::size_t k, const std::vector<Piece>& pieces, const RestoreDest& dest,
               const TaskGroup& group)
      : st_(st), k_(k), dest_(dest), group_(group) {
    for (const auto& piece : pieces) file_of_[piece.entry] = piece.file;
  }
  void on_begin(const ManifestFile& e) override {
    check_stop();
    idx_ = file_of_.at(&e);
    file_ = &st_.p.files[idx_];
    auto [root, rel] = dest_.dest(*file_->target);
    root_ = root;
    rel_ = rel;
    path_ = root + "/" + rel;
    writer_ = std::make_unique<RunWriter>([this] { return open(); }, path_);
    diff_.reset();
    pos_ = 0;
    if (e.kind == FileKind::Full) {
      if (file_->first != file_->last) cover().begin_piece(0);  // the base of a composed file
      else open();
      return;
    }
    diff_ = std::make_unique<BlockDiffReader>(
        "blocks entry", [this, &e](const BlockDiffHeader& h) { apply_header(e, h); },
        [this](std::uint32_t b, ByteView block) {
          if (cover().take(b)) writer_->add(std::uint64_t{b} * block.size(), block);
        });
  }

  void on_data(const ManifestFile&, ByteView part) override {
    check_stop();
    if (diff_) diff_->write(part);
    else if (file_->first == file_->last) write_full(fd_.get(), part, path_);
    else write_base(part);
    st_.n.read += part.size();
  }

  void on_end(const ManifestFile& e, const std::string& mismatch) override {
    if (!mismatch.empty()) {
      throw Error(ErrorKind::Corruption, std::string(e.kind == FileKind::Blocks ? "changed blocks" : "content") +
                                             " fail verification: " + mismatch);
    }
    if (diff_) diff_->finish();
    writer_->flush();
    writer_.reset();
    bool composed = file_->first != file_->last;
    if (composed) cover().end_piece();
    if (k_ == file_->first || (composed && cover().complete())) finish();
    else if (fd_) fd_.close(path_);
  }

 private:
  void check_stop() const {
    if (group_.stop_requested()) throw Error(ErrorKind::Interrupted, "stopped after another bundle failed");
  }
  // The file, opened at its piece's first write (or its finish): created by the first piece that writes,
  // with its final length (blocks no piece writes stay holes, read as zeros).
  int open() {
    if (fd_) return fd_.get();
    const bool create = !st_.created[idx_];
    fd_ = open_file_beneath(root_, rel_, create);
    st_.created[idx_] = 1;
    if (create && file_->first != file_->last) truncate_to(fd_.get(), file_->target->size, path_);
    return fd_.get();
  }
  BlockCover& cover() {
    if (!st_.covers[idx_]) throw Error(ErrorKind::Corruption, "file " + file_->target->path + " has no newer piece");
    return *st_.covers[idx_];
  }

  // The newest piece sets the file's length and creates its cover; an older one must agree on the
  // block size. Its truncation length applies to the pieces older than it.
  void apply_header(const ManifestFile& e, const BlockDiffHeader& h) {
    check_diff_header(e, h, k_ == file_->last ? file_->target : nullptr);
    if (k_ == file_->last) {
      st_.covers[idx_] = std::make_unique<BlockCover>(h.file_blocks, h.block_size);
    } else if (cover().block_size() != h.block_size) {
      throw Error(ErrorKind::Corruption, "blocks entry has blocks of " + std::to_string(h.block_size) +
                                             " bytes, a newer backup's of " + std::to_string(cover().block_size()));
    }
    cover().begin_piece(h.truncation_blocks);
  }

  // The base's bytes: each block written when the cover gives it to this piece (decided at its first byte).
  void write_base(ByteView part) {
    const std::uint64_t bs = cover().block_size();
    while (!part.empty()) {
      if (pos_ % bs == 0) take_ = cover().take(pos_ / bs);
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(part.size(), bs - pos_ % bs));
      if (take_) writer_->add(pos_, part.first(n));
      part = part.subspan(n);
      pos_ += n;
    }
  }

  void finish() {
    open();
    finish_chain_file(st_, idx_, fd_, path_);
  }

  ChainState& st_;
  const std::size_t k_;
  const RestoreDest& dest_;
  const TaskGroup& group_;
  std::unordered_map<const ManifestFile*, std::size_t> file_of_;
  std::size_t idx_ = 0;
  const FilePieces* file_ = nullptr;
  Fd fd_;
  std::string root_, rel_, path_;
  std::unique_ptr<RunWriter> writer_;
  std::unique_ptr<BlockDiffReader> diff_;
  std::uint64_t pos_ = 0;  // bytes of the base seen
  bool take_ = false;      // the base's current block is written
};

// One task: bundle `idx` of backup `k`, its pieces applied.
void apply_bundle(Repository& repo, ChainState& st, std::size_t k, std::uint64_t idx, const std::vector<Piece>& pieces,
                  const RestoreDest& dest, const TaskGroup& group) {
  std::vector<const ManifestFile*> entries;
  for (const auto& piece : pieces) entries.push_back(piece.entry);
  PieceVisitor visitor(st, k, pieces, dest, group);
  read_bundle(repo, st, k, idx, std::move(entries), visitor);
}

// Batches of files, [first, second) of ChainPieces::files, whose covers fit kCoverBudget (at most one
// bit per KiB of a file: the smallest block size).
std::vector<std::pair<std::size_t, std::size_t>> cover_batches(const ChainPieces& p) {
  std::vector<std::pair<std::size_t, std::size_t>> out{{0, 0}};
  std::uint64_t used = 0;
  for (std::size_t i = 0; i < p.files.size(); ++i) {
    std::uint64_t need = p.files[i].first == p.files[i].last ? 0 : p.files[i].target->size / 8192 + 8;
    if (used + need > kCoverBudget && out.back().second > out.back().first) {
      out.emplace_back(i, i);
      used = 0;
    }
    used += need;
    out.back().second = i + 1;
  }
  return out;
}

// The pieces of backup `k` still needed by the files [lo, hi), by bundle.
std::vector<std::pair<std::uint64_t, std::vector<Piece>>> needed(const ChainState& st, std::size_t k, std::size_t lo,
                                                                 std::size_t hi) {
  std::vector<std::pair<std::uint64_t, std::vector<Piece>>> out;
  for (const auto& [idx, pieces] : st.p.reads[k]) {
    std::vector<Piece> keep;
    for (const auto& piece : pieces) {
      if (piece.file >= lo && piece.file < hi && !st.done[piece.file] && !st.piped[piece.file]) keep.push_back(piece);
    }
    if (!keep.empty()) out.emplace_back(idx, std::move(keep));
  }
  return out;
}

// One task of a pass: a pipelined file or a bundle of the pass's backup.
struct PassTask {
  bool piped = false;
  std::size_t index = 0;
  std::uint64_t bytes = 0;  // of the pieces it reads
};

// The first `n_piped` pipelined files and the bundles, the most bytes first: the longest tasks start
// first, so that no large one is left to run alone at the end of the pass.
std::vector<PassTask> pass_tasks(std::size_t n_piped, const std::vector<PipeFile>& piped,
                                 const std::vector<std::pair<std::uint64_t, std::vector<Piece>>>& bundles) {
  std::vector<PassTask> out;
  for (std::size_t i = 0; i < n_piped; ++i) {
    PassTask t{true, i, 0};
    for (const auto& piece : piped[i].pieces) t.bytes += piece.second->bundle_bytes();
    out.push_back(t);
  }
  for (std::size_t i = 0; i < bundles.size(); ++i) {
    PassTask t{false, i, 0};
    for (const auto& piece : bundles[i].second) t.bytes += piece.entry->bundle_bytes();
    out.push_back(t);
  }
  std::stable_sort(out.begin(), out.end(), [](const PassTask& a, const PassTask& b) { return a.bytes > b.bytes; });
  return out;
}

}  // namespace

WriteTotals write_chain(Repository& repo, const RestorePlan& plan, const RestoreDest& dest, const RestoreOptions& opts) {
  std::vector<const BackupManifest*> chain;
  for (const auto& m : plan.chain) chain.push_back(&m);
  chain.push_back(&plan.backup);
  const ChainPieces p = plan_pieces(chain, dest);

  repo.read_key();  // load (and verify) the key once, before the threads share the repository
  TaskGroup group(opts.parallel > 0 ? opts.parallel : repo.config().backup.parallel);
  ChainState st(p);
  Progress progress(opts.progress, "restoring " + plan.backup.label);
  progress.set_total(p.bytes);
  for (const auto& [lo, hi] : cover_batches(p)) {
    // The pipelined files (chain_pipe.h) are tasks of the newest backup's pass.
    const auto piped = pipe_files(st, lo, hi);
    for (std::size_t k = chain.size(); k-- > 0;) {
      const auto bundles = needed(st, k, lo, hi);
      const auto tasks = pass_tasks(k + 1 == chain.size() ? piped.size() : 0, piped, bundles);
      group.run(
          tasks.size(),
          [&](std::size_t i) {
            if (tasks[i].piped) return pipe_file(repo, st, piped[tasks[i].index], dest, group);
            const auto& [idx, pieces] = bundles[tasks[i].index];
            apply_bundle(repo, st, k, idx, pieces, dest, group);
          },
          [&] {
            progress.set_done(st.n.read.load());
            progress.tick();
          });
    }
  }
  progress.clear();
  std::string label = label_without_incremental_lines(plan.backup.backup_label);
  write_small_file(dest.pgdata + "/backup_label", label, 0600);
  return {st.n.files.load() + 1, st.n.bytes.load() + label.size()};
}

}  // namespace pgvault::restore_detail
