// BlockQueue and merge_pieces (piece_merge.h).
#include "common/restore/piece_merge.h"

#include <algorithm>
#include <limits>
#include <string>

#include "common/base/errors.h"

namespace pgvault::restore_detail {

void BlockQueue::wait(std::unique_lock<std::mutex>& lock, const std::function<bool()>& ready) {
  cv_.wait(lock, [&] { return cancelled_ || ready(); });
  if (cancelled_) throw Error(ErrorKind::Interrupted, "stopped after another piece of the file failed");
}

void BlockQueue::set_header(const PieceHeader& h) {
  std::lock_guard lock(mu_);
  header_ = h;
  has_header_ = true;
  cv_.notify_all();
}

BlockBatch BlockQueue::spare() {
  {
    std::lock_guard lock(mu_);
    if (!spare_.empty()) {
      BlockBatch b = std::move(spare_.back());
      spare_.pop_back();
      return b;
    }
  }
  BlockBatch b;
  b.data.reserve(kBatchBytes + kBaseAlign);  // a block-diff's batch may pass kBatchBytes by one block
  return b;
}

void BlockQueue::push(BlockBatch&& batch) {
  std::unique_lock lock(mu_);
  wait(lock, [this] { return queued_.size() < kQueueBatches; });
  queued_.push_back(std::move(batch));
  cv_.notify_all();
}

void BlockQueue::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

PieceHeader BlockQueue::header() {
  std::unique_lock lock(mu_);
  wait(lock, [this] { return has_header_ || closed_; });
  if (!has_header_) throw Error(ErrorKind::Corruption, "blocks entry ended without its header");
  return header_;
}

bool BlockQueue::pop(BlockBatch& out) {
  std::unique_lock lock(mu_);
  wait(lock, [this] { return !queued_.empty() || closed_; });
  if (queued_.empty()) return false;
  out = std::move(queued_.front());
  queued_.pop_front();
  cv_.notify_all();
  return true;
}

void BlockQueue::recycle(BlockBatch&& batch) {
  if (batch.data.capacity() == 0) return;  // nothing worth keeping (a moved-from or never filled batch)
  batch.clear();
  std::lock_guard lock(mu_);
  if (spare_.size() <= kQueueBatches) spare_.push_back(std::move(batch));
}

void BlockQueue::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

namespace {

// One piece being merged: its current batch and the block read next.
struct Cursor {
  BlockQueue* q = nullptr;
  bool base = false;
  std::uint64_t bs = 0;
  std::uint64_t cutoff = 0;  // its blocks at or past it were truncated away by a newer piece
  BlockBatch batch;
  std::size_t i = 0, count = 0;
  bool done = false;

  // False once the piece is exhausted; otherwise head() is its next block. `release` is called before
  // the current batch goes back to the producer (views into it end there).
  bool fill(const std::function<void()>& check_stop, const std::function<void()>& release) {
    while (!done && i >= count) {
      if (count > 0) release();
      q->recycle(std::move(batch));
      check_stop();
      if (!q->pop(batch)) {
        done = true;
        break;
      }
      i = 0;
      count = base ? (batch.data.size() + bs - 1) / bs : batch.numbers.size();
      if (base && batch.first_byte % bs != 0) {
        throw Error(ErrorKind::Internal, "base batch at " + std::to_string(batch.first_byte) + " splits a block");
      }
    }
    return !done;
  }
  std::uint64_t head() const { return base ? batch.first_byte / bs + i : batch.numbers[i]; }
  ByteView data() const {
    std::size_t at = i * bs;
    return ByteView(batch.data).subspan(at, std::min<std::size_t>(bs, batch.data.size() - at));
  }
};

std::vector<Cursor> open_cursors(const std::vector<BlockQueue*>& pieces, bool last_is_base) {
  std::vector<Cursor> cs(pieces.size());
  std::uint64_t bs = 0, cutoff = 0;
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    Cursor& c = cs[k];
    c.q = pieces[k];
    c.base = last_is_base && k + 1 == pieces.size();
    PieceHeader h = c.base ? PieceHeader{} : c.q->header();
    if (k == 0) {
      bs = h.block_size;
      cutoff = h.file_blocks;
    } else if (!c.base && h.block_size != bs) {
      throw Error(ErrorKind::Corruption, "blocks entry has blocks of " + std::to_string(h.block_size) +
                                             " bytes, a newer backup's of " + std::to_string(bs));
    }
    c.bs = bs;
    c.cutoff = cutoff;
    if (!c.base) cutoff = std::min(cutoff, h.truncation_blocks);
  }
  return cs;
}

}  // namespace

namespace {

// Blocks contiguous both in the file and in one batch's memory, handed to write() as one span (no copy).
class Spans {
 public:
  explicit Spans(const std::function<void(std::uint64_t, ByteView)>& write) : write_(write) {}
  void add(std::uint64_t at, ByteView data) {
    if (len_ > 0 && at == at_ + len_ && data.data() == ptr_ + len_) {
      len_ += data.size();
      return;
    }
    flush();
    at_ = at;
    ptr_ = data.data();
    len_ = data.size();
  }
  void flush() {
    if (len_ > 0) write_(at_, ByteView(ptr_, len_));
    len_ = 0;
  }

 private:
  const std::function<void(std::uint64_t, ByteView)>& write_;
  std::uint64_t at_ = 0;
  const std::uint8_t* ptr_ = nullptr;
  std::size_t len_ = 0;
};

}  // namespace

void merge_pieces(const std::vector<BlockQueue*>& pieces, bool last_is_base,
                  const std::function<void(std::uint64_t, ByteView)>& write, const std::function<void()>& check_stop) {
  std::vector<Cursor> cs = open_cursors(pieces, last_is_base);
  Spans spans(write);
  const std::function<void()> release = [&] { spans.flush(); };
  constexpr std::uint64_t kNone = std::numeric_limits<std::uint64_t>::max();
  for (;;) {
    std::uint64_t b = kNone;
    for (auto& c : cs) {
      if (c.fill(check_stop, release)) b = std::min(b, c.head());
    }
    if (b == kNone) break;
    bool settled = false;  // the newest piece listing b decides it (its block, or zeros past its cutoff)
    for (auto& c : cs) {
      if (c.done || c.head() != b) continue;
      if (!settled && b < c.cutoff) spans.add(b * c.bs, c.data());
      settled = true;
      ++c.i;
    }
  }
  spans.flush();
}

}  // namespace pgvault::restore_detail
