// The block-diff entry (see block_diff.h and docs/FORMAT.md).
#include "common/repo/block_diff.h"

#include <cstring>
#include <string>

#include "common/base/errors.h"

namespace pgvault {

namespace {

constexpr char kMagic[8] = {'P', 'G', 'V', 'B', 'L', 'K', 'D', '1'};

void put_u32(Bytes& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(Bytes& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint64_t get_le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
bool valid_block_size(std::uint32_t b) { return b >= 1024 && b <= 32768 && (b & (b - 1)) == 0; }

}  // namespace

BlockDiffWriter::BlockDiffWriter(Sink& out, const BlockDiffHeader& header) : out_(out), header_(header) {
  if (!valid_block_size(header.block_size) || header.truncation_blocks > header.file_blocks) {
    throw Error(ErrorKind::Internal, "block-diff: bad header (block size " + std::to_string(header.block_size) +
                                         ", truncation " + std::to_string(header.truncation_blocks) + " > " +
                                         std::to_string(header.file_blocks) + " blocks?)");
  }
  Bytes h(kMagic, kMagic + 8);
  put_u32(h, header.block_size);
  put_u32(h, 0);
  put_u64(h, header.truncation_blocks);
  put_u64(h, header.file_blocks);
  out_.write(h);
  bytes_ += h.size();
}

void BlockDiffWriter::add(std::uint32_t block_number, ByteView block) {
  if (finished_ || block.size() != header_.block_size || static_cast<std::int64_t>(block_number) <= last_ ||
      block_number >= header_.file_blocks) {
    throw Error(ErrorKind::Internal, "block-diff: block " + std::to_string(block_number) +
                                         " out of order, beyond the file or of the wrong size");
  }
  last_ = block_number;
  put_u32(numbers_, block_number);
  data_.insert(data_.end(), block.begin(), block.end());
  ++blocks_;
  if (++pending_ == kBlockDiffMaxChunk) flush_chunk();
}

void BlockDiffWriter::flush_chunk() {
  if (pending_ == 0) return;
  Bytes count;
  put_u32(count, pending_);
  out_.write(count);
  out_.write(numbers_);
  out_.write(data_);
  bytes_ += count.size() + numbers_.size() + data_.size();
  numbers_.clear();
  data_.clear();
  pending_ = 0;
}

void BlockDiffWriter::finish() {
  if (finished_) return;
  flush_chunk();
  Bytes end;
  put_u32(end, 0);
  out_.write(end);
  bytes_ += end.size();
  finished_ = true;
}

BlockDiffReader::BlockDiffReader(std::string what, HeaderFn on_header, BlockFn on_block)
    : what_(std::move(what)), on_header_(std::move(on_header)), on_block_(std::move(on_block)) {}

void BlockDiffReader::write(ByteView data) {
  std::size_t i = 0;
  while (i < data.size()) {
    if (state_ == State::End) throw Error(ErrorKind::Corruption, what_ + ": bytes after the end of the block-diff entry");
    std::size_t take = std::min(need_ - buf_.size(), data.size() - i);
    buf_.insert(buf_.end(), data.begin() + static_cast<std::ptrdiff_t>(i),
                data.begin() + static_cast<std::ptrdiff_t>(i + take));
    i += take;
    if (buf_.size() == need_) step();
  }
}

// Consumes the complete field in buf_ and sets up the next one.
void BlockDiffReader::step() {
  auto bad = [&](const std::string& why) { return Error(ErrorKind::Corruption, what_ + ": block-diff entry " + why); };
  switch (state_) {
    case State::Header: {
      if (std::memcmp(buf_.data(), kMagic, 8) != 0) throw bad("has no PGVBLKD1 magic");
      header_.block_size = static_cast<std::uint32_t>(get_le(&buf_[8], 4));
      header_.truncation_blocks = get_le(&buf_[16], 8);
      header_.file_blocks = get_le(&buf_[24], 8);
      if (!valid_block_size(header_.block_size)) throw bad("has block size " + std::to_string(header_.block_size));
      if (get_le(&buf_[12], 4) != 0) throw bad("has a non-zero reserved field");
      if (header_.truncation_blocks > header_.file_blocks || header_.file_blocks > (1ull << 32)) {
        throw bad("has truncation length " + std::to_string(header_.truncation_blocks) + " and length " +
                  std::to_string(header_.file_blocks) + " blocks");
      }
      on_header_(header_);
      state_ = State::Count;
      need_ = 4;
      break;
    }
    case State::Count: {
      auto count = static_cast<std::uint32_t>(get_le(buf_.data(), 4));
      if (count == 0) {
        state_ = State::End;
        need_ = 0;
        break;
      }
      if (count > kBlockDiffMaxChunk) throw bad("has a chunk of " + std::to_string(count) + " blocks");
      numbers_.assign(count, 0);
      state_ = State::Numbers;
      need_ = 4ull * count;
      break;
    }
    case State::Numbers: {
      for (std::size_t k = 0; k < numbers_.size(); ++k) {
        numbers_[k] = static_cast<std::uint32_t>(get_le(&buf_[4 * k], 4));
        if (static_cast<std::int64_t>(numbers_[k]) <= last_ || numbers_[k] >= header_.file_blocks) {
          throw bad("lists block " + std::to_string(numbers_[k]) + " out of order or beyond its " +
                    std::to_string(header_.file_blocks) + " blocks");
        }
        last_ = numbers_[k];
      }
      next_block_ = 0;
      state_ = State::Blocks;
      need_ = header_.block_size;
      break;
    }
    case State::Blocks: {
      on_block_(numbers_[next_block_], buf_);
      if (++next_block_ == numbers_.size()) {
        state_ = State::Count;
        need_ = 4;
      }
      break;
    }
    case State::End: break;
  }
  buf_.clear();
}

void BlockDiffReader::finish() {
  if (state_ != State::End) throw Error(ErrorKind::Corruption, what_ + ": block-diff entry is cut short");
}

}  // namespace pgvault
