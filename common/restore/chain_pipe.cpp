// pipe_files and pipe_file (chain_pipe.h).
#include "common/restore/chain_pipe.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <exception>

#include "common/base/task_group.h"
#include "common/base/threads.h"
#include "common/restore/piece_merge.h"

namespace pgvault::restore_detail {

namespace {

// Decodes one piece (the only entry read from its bundle) into its queue, in batches of kBatchBytes.
class PieceFeeder final : public ChainVisitor {
 public:
  PieceFeeder(BlockQueue& q, BlockQueue* newest, const ManifestFile* target, ChainCounters& n, const TaskGroup& group)
      : q_(q), newest_(newest), target_(target), n_(n), group_(group) {}

  void on_begin(const ManifestFile& e) override {
    check_stop();
    batch_ = q_.spare();
    if (e.kind != FileKind::Blocks) return;
    diff_ = std::make_unique<BlockDiffReader>(
        "blocks entry", [this, &e](const BlockDiffHeader& h) { header(e, h); },
        [this](std::uint32_t b, ByteView block) {
          batch_.numbers.push_back(b);
          batch_.data.insert(batch_.data.end(), block.begin(), block.end());
          if (batch_.data.size() >= kBatchBytes) push();
        });
  }

  void on_data(const ManifestFile&, ByteView part) override {
    check_stop();
    n_.read += part.size();
    if (diff_) {
      diff_->write(part);
      return;
    }
    while (!part.empty()) {  // a base: batches of kBatchBytes (a multiple of kBaseAlign) from its start
      std::size_t n = std::min(part.size(), kBatchBytes - batch_.data.size());
      batch_.data.insert(batch_.data.end(), part.begin(), part.begin() + static_cast<std::ptrdiff_t>(n));
      part = part.subspan(n);
      pos_ += n;
      if (batch_.data.size() == kBatchBytes) push();
    }
  }

  void on_end(const ManifestFile& e, const std::string& mismatch) override {
    if (!mismatch.empty()) {
      throw Error(ErrorKind::Corruption, std::string(e.kind == FileKind::Blocks ? "changed blocks" : "content") +
                                             " fail verification: " + mismatch);
    }
    if (diff_) diff_->finish();
    if (!batch_.data.empty()) push();
  }

 private:
  void check_stop() const {
    if (group_.stop_requested()) throw Error(ErrorKind::Interrupted, "stopped after another bundle failed");
  }
  void header(const ManifestFile& e, const BlockDiffHeader& h) {
    check_diff_header(e, h, newest_ ? nullptr : target_);
    if (newest_ && newest_->header().block_size != h.block_size) {
      throw Error(ErrorKind::Corruption, "blocks entry has blocks of " + std::to_string(h.block_size) +
                                             " bytes, a newer backup's of " +
                                             std::to_string(newest_->header().block_size));
    }
    q_.set_header({h.block_size, h.truncation_blocks, h.file_blocks});
  }
  void push() {
    q_.push(std::move(batch_));
    batch_ = q_.spare();
    batch_.first_byte = pos_;
  }

  BlockQueue& q_;
  BlockQueue* newest_;  // the newest piece's queue (its header gives the block size), nullptr in it
  const ManifestFile* target_;
  ChainCounters& n_;
  const TaskGroup& group_;
  std::unique_ptr<BlockDiffReader> diff_;
  BlockBatch batch_;
  std::uint64_t pos_ = 0;  // a base's bytes read
};

// A hint only (never trusted for the result): the block-diff entry `e` seems to list every block of its
// file (its length is that of an entry of size / 8 KiB blocks, all listed). Its older pieces then add
// nothing, and the backup-by-backup way does not read them at all (BlockCover::complete).
bool lists_every_block(const ManifestFile& e) {
  const std::uint64_t bs = 8192, n = e.size / bs;
  const std::uint64_t chunks = (n + kBlockDiffMaxChunk - 1) / kBlockDiffMaxChunk;
  return e.kind == FileKind::Blocks && e.stored_size == kBlockDiffHeaderSize + 4 * chunks + n * (4 + bs) + 4;
}

}  // namespace

std::vector<PipeFile> pipe_files(ChainState& st, std::size_t lo, std::size_t hi) {
  std::vector<std::size_t> pieces(hi - lo, 0);
  std::vector<PipeFile> alone(hi - lo);  // the pieces that are the only ones read from their bundle
  for (std::size_t k = st.p.reads.size(); k-- > 0;) {
    for (const auto& [idx, list] : st.p.reads[k]) {
      for (const auto& piece : list) {
        if (piece.file < lo || piece.file >= hi) continue;
        ++pieces[piece.file - lo];
        if (list.size() == 1) alone[piece.file - lo].pieces.emplace_back(k, piece.entry);
      }
    }
  }
  std::vector<PipeFile> out;
  for (std::size_t i = lo; i < hi; ++i) {
    const FilePieces& f = st.p.files[i];
    PipeFile& a = alone[i - lo];
    if (f.first == f.last || st.done[i]) continue;
    if (a.pieces.size() != pieces[i - lo] || a.pieces.size() > kPipeMaxPieces) continue;
    if (std::any_of(a.pieces.begin(), a.pieces.end(), [](const auto& piece) { return lists_every_block(*piece.second); })) continue;
    a.file = i;
    st.piped[i] = 1;
    out.push_back(std::move(a));
  }
  return out;
}

void pipe_file(Repository& repo, ChainState& st, const PipeFile& f, const RestoreDest& dest, const TaskGroup& group) {
  const ManifestFile& target = *st.p.files[f.file].target;
  auto [root, rel] = dest.dest(target);
  const std::string path = root + "/" + rel;
  std::vector<BlockQueue> qs(f.pieces.size());
  std::vector<BlockQueue*> queues;
  for (auto& q : qs) queues.push_back(&q);
  FirstError err;  // a piece's or the merge's; the others follow from its cancel
  auto cancel_all = [&] {
    for (auto& q : qs) q.cancel();
  };
  spdlog::debug("{}: {} pieces composed at once", rel, f.pieces.size());
  Fd fd = open_file_beneath(root, rel, true);
  st.created[f.file] = 1;
  truncate_to(fd.get(), target.size, path);
  {
    ThreadGroup threads(cancel_all);
    try {
      for (std::size_t i = 0; i < f.pieces.size(); ++i) {
        threads.start([&, i] {
          const auto& [k, entry] = f.pieces[i];
          PieceFeeder feeder(qs[i], i == 0 ? nullptr : &qs[0], &target, st.n, group);
          try {
            read_bundle(repo, st, k, entry->bundle, {entry}, feeder);
            qs[i].close();  // only now: the bundle was verified whole
          } catch (...) {
            err.record(std::current_exception());
            cancel_all();
          }
        });
      }
      merge_pieces(queues, f.pieces.back().second->kind == FileKind::Full,
                   [&](std::uint64_t at, ByteView run) { pwrite_all(fd.get(), run, at, path); },
                   [&] {
                     if (group.stop_requested()) throw Error(ErrorKind::Interrupted, "stopped after another bundle failed");
                   });
    } catch (...) {
      err.record(std::current_exception());
      cancel_all();
    }
    threads.join();
  }
  err.rethrow();
  finish_chain_file(st, f.file, fd, path);
}

}  // namespace pgvault::restore_detail
