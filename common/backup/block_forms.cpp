// The INCREMENTAL-file converter and the client-side block filter (block_forms.h).
//
// Why a torn or stale page read by the client-side filter is safe: BASE_BACKUP forces full-page writes
// while a backup runs (whatever full_page_writes says), so the first change of any page after this
// backup's start checkpoint writes a full-page image into the WAL that a restore of this backup replays
// from its start LSN. A page being written while we read it (torn: its pd_lsn from one version, its body
// from another) or changed after we read it (stale) is therefore overwritten whole by replay, whichever
// version we stored or inherited from the parent. A page not changed after the checkpoint is on disk in
// its final form (the checkpoint flushed it) and its pd_lsn tells the truth: below the parent's start LSN
// means its last WAL-logged change happened before the parent's checkpoint, so the parent holds this very
// content (by the same argument, applied to the parent's own backup). Changes that are not WAL-logged do
// not move pd_lsn: hint bits (harmless to lose) and the free space map, which is why FSM forks are kept
// whole (every block). Relation files the parent lacks (new relations, a database created by file copy
// whose pages keep the template's old LSNs) are stored whole by the caller, never filtered. The one case
// this cannot see: CREATE DATABASE ... STRATEGY FILE_COPY (not the default since PostgreSQL 15) into a
// database OID the parent had for another database, i.e. after the OID counter wrapped around; take a
// full backup after such a database creation (server mode, from WAL summaries, is not affected).
#include "common/backup/block_forms.h"

#include <algorithm>

#include "common/base/errors.h"

namespace pgvault {

namespace {

std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// Moves bytes from `data` into `buf` until it holds `need`; true when it does.
bool gather(Bytes& buf, std::size_t need, ByteView& data) {
  std::size_t take = std::min(need - buf.size(), data.size());
  buf.insert(buf.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
  data = data.subspan(take);
  return buf.size() == need;
}

}  // namespace

std::uint64_t block_diff_bound(std::uint64_t blocks, std::uint32_t block_size) {
  const std::uint64_t chunks = (blocks + kBlockDiffMaxChunk - 1) / kBlockDiffMaxChunk;
  return kBlockDiffHeaderSize + blocks * (block_size + 4ull) + chunks * 4 + 4;
}

// ---- IncrementalFileConverter ------------------------------------------------------------------------

IncrementalFileConverter::IncrementalFileConverter(std::string what, std::uint64_t entry_size,
                                                   std::uint32_t block_size, Sink& out)
    : what_(std::move(what)), entry_size_(entry_size), block_size_(block_size), out_(out) {}

IncrementalFileConverter::~IncrementalFileConverter() = default;

std::uint64_t IncrementalFileConverter::stored_bytes() const { return writer_ ? writer_->bytes() : 0; }

// magic, block count, truncation length; then the entry's size must be exactly what they announce.
void IncrementalFileConverter::parse_fixed_header() {
  const std::uint32_t magic = le32(buf_.data());
  count_ = le32(buf_.data() + 4);
  truncation_ = le32(buf_.data() + 8);
  buf_.clear();
  if (magic != kIncrementalMagic) {
    throw Error(ErrorKind::Corruption, what_ + ": not an incremental file (magic " + std::to_string(magic) + ")");
  }
  if (count_ > kMaxIncrementalBlocks || truncation_ > kMaxIncrementalBlocks) {
    throw Error(ErrorKind::Corruption, what_ + ": implausible header (" + std::to_string(count_) + " blocks, truncation length " +
                                           std::to_string(truncation_) + ")");
  }
  const std::uint64_t header = 12 + 4ull * count_;
  const std::uint64_t padded = count_ > 0 ? (header + block_size_ - 1) / block_size_ * block_size_ : header;
  const std::uint64_t data = std::uint64_t{count_} * block_size_;
  if (entry_size_ == padded + data) skip_ = padded - header;
  else if (entry_size_ != header + data) {
    throw Error(ErrorKind::Corruption, what_ + ": " + std::to_string(entry_size_) + " bytes do not hold the " +
                                           std::to_string(count_) + " blocks its header announces");
  }
  need_ = 4ull * count_;
  state_ = State::Numbers;
  if (count_ == 0) parse_block_numbers();
}

void IncrementalFileConverter::parse_block_numbers() {
  numbers_.resize(count_);
  for (std::uint32_t i = 0; i < count_; ++i) {
    numbers_[i] = le32(buf_.data() + 4ull * i);
    if (numbers_[i] >= kMaxIncrementalBlocks || (i > 0 && numbers_[i] <= numbers_[i - 1])) {
      throw Error(ErrorKind::Corruption, what_ + ": block number " + std::to_string(numbers_[i]) + " at position " +
                                             std::to_string(i) + " is out of order or out of range");
    }
  }
  buf_.clear();
  buf_.shrink_to_fit();
  file_blocks_ = std::max<std::uint64_t>(truncation_, count_ ? numbers_.back() + 1ull : 0);
  writer_ = std::make_unique<BlockDiffWriter>(out_, BlockDiffHeader{block_size_, truncation_, file_blocks_});
  need_ = block_size_;
  state_ = State::Blocks;
}

void IncrementalFileConverter::write(ByteView data) {
  while (!data.empty()) {
    if (state_ == State::Fixed) {
      if (gather(buf_, need_, data)) parse_fixed_header();
    } else if (state_ == State::Numbers) {
      if (gather(buf_, need_, data)) parse_block_numbers();
    } else if (skip_ > 0) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, data.size()));
      skip_ -= n;
      data = data.subspan(n);
    } else {
      if (next_ == numbers_.size()) throw Error(ErrorKind::Corruption, what_ + ": bytes after the last block");
      if (!gather(buf_, need_, data)) continue;
      writer_->add(numbers_[next_++], buf_);
      buf_.clear();
    }
  }
}

std::uint64_t IncrementalFileConverter::finish() {
  if (state_ != State::Blocks || skip_ > 0 || next_ != numbers_.size() || !buf_.empty()) {
    throw Error(ErrorKind::Corruption, what_ + ": the incremental file ends early");
  }
  writer_->finish();
  return file_blocks_ * block_size_;
}

// ---- client side ---------------------------------------------------------------------------------------

bool page_changed_since(ByteView page, std::uint64_t since_lsn) {
  const std::uint64_t lsn = std::uint64_t{le32(page.data())} << 32 | le32(page.data() + 4);
  if (lsn == 0 || lsn >= since_lsn) return true;
  // pd_upper: after pd_lsn (8), pd_checksum (2), pd_flags (2), pd_lower (2).
  const std::uint16_t upper = static_cast<std::uint16_t>(page[14] | page[15] << 8);
  return upper == 0;
}

ChangedBlockFilter::ChangedBlockFilter(std::string what, std::uint64_t file_size, std::uint32_t block_size,
                                       std::uint64_t parent_size, std::uint64_t since_lsn, bool every_block, Sink& out)
    : what_(std::move(what)),
      block_size_(block_size),
      file_blocks_(file_size / block_size),
      parent_blocks_(parent_size / block_size),
      since_lsn_(since_lsn),
      every_block_(every_block),
      writer_(out, BlockDiffHeader{block_size, file_size / block_size, file_size / block_size}) {
  if (file_size % block_size != 0) throw Error(ErrorKind::Internal, what_ + ": not a whole number of blocks");
}

void ChangedBlockFilter::write(ByteView data) {
  while (!data.empty()) {
    if (next_block_ == file_blocks_) throw Error(ErrorKind::Corruption, what_ + ": more bytes than announced");
    if (!gather(block_, block_size_, data)) return;
    const std::uint64_t b = next_block_++;
    if (every_block_ || b >= parent_blocks_ || page_changed_since(block_, since_lsn_)) {
      writer_.add(static_cast<std::uint32_t>(b), block_);
    }
    block_.clear();
  }
}

void ChangedBlockFilter::finish() {
  if (next_block_ != file_blocks_ || !block_.empty()) throw Error(ErrorKind::Corruption, what_ + ": ended early");
  writer_.finish();
}

}  // namespace pgvault
