// RecordBody (wal_record_body.h): block headers (xlogrecord.h, DecodeXLogRecord in xlogreader.c) to find
// the main data, then the fields of xl_xact_commit / xl_xact_abort (ParseCommitRecord and
// ParseAbortRecord in xactdesc.c) and xl_restore_point that recovery targets use.
#include "common/pg/wal_record_body.h"

#include <algorithm>
#include <cstring>

namespace pgvault::walrec {

namespace {

// xl_info of RM_XACT_ID records.
constexpr std::uint8_t kXactOpMask = 0x70;
constexpr std::uint8_t kXactCommit = 0x00;
constexpr std::uint8_t kXactAbort = 0x20;
constexpr std::uint8_t kXactCommitPrepared = 0x30;
constexpr std::uint8_t kXactAbortPrepared = 0x40;
constexpr std::uint8_t kXactHasInfo = 0x80;
// xl_xact_xinfo flags.
constexpr std::uint32_t kHasDbInfo = 1u << 0;
constexpr std::uint32_t kHasSubxacts = 1u << 1;
constexpr std::uint32_t kHasRelFiles = 1u << 2;
constexpr std::uint32_t kHasInvals = 1u << 3;
constexpr std::uint32_t kHasTwoPhase = 1u << 4;
constexpr std::uint32_t kHasDroppedStats = 1u << 8;
// Block ids of the record's data headers.
constexpr std::uint8_t kMaxBlockId = 32;
constexpr std::uint8_t kBlockIdTopLevelXid = 252;
constexpr std::uint8_t kBlockIdOrigin = 253;
constexpr std::uint8_t kBlockIdDataLong = 254;
constexpr std::uint8_t kBlockIdDataShort = 255;
// fork_flags and bimg_info bits.
constexpr std::uint8_t kBlockHasImage = 0x10;
constexpr std::uint8_t kBlockHasData = 0x20;
constexpr std::uint8_t kBlockSameRel = 0x80;
constexpr std::uint8_t kImageHasHole = 0x01;
constexpr std::size_t kRestorePointSize = 8 + 64;  // xl_restore_point: rp_time, rp_name[MAXFNAMELEN]

enum Step { kTime = 0, kXinfo = 1, kTwoPhase = 2, kRestorePoint = 3, kArray = 10 };

std::uint16_t u16(const std::uint8_t* p) { std::uint16_t v; std::memcpy(&v, p, 2); return v; }
std::uint32_t u32(const std::uint8_t* p) { std::uint32_t v; std::memcpy(&v, p, 4); return v; }

bool is_prepared(WalEventKind k) { return k == WalEventKind::CommitPrepared || k == WalEventKind::AbortPrepared; }
bool is_commit(WalEventKind k) { return k == WalEventKind::Commit || k == WalEventKind::CommitPrepared; }

// The counted arrays of a commit or abort record before xl_xact_twophase, in record order.
struct ArrayKind {
  std::uint32_t flag;
  bool commit_only;
};
constexpr ArrayKind kArrays[] = {
    {kHasSubxacts, false},      // int nsubxacts; TransactionId subxacts[]
    {kHasRelFiles, false},      // int nrels; RelFileLocator[] (12 bytes)
    {kHasDroppedStats, false},  // int nitems; xl_xact_stats_item[] (12 bytes, 16 from PostgreSQL 18)
    {kHasInvals, true},         // int nmsgs; SharedInvalidationMessage[] (16 bytes)
};

std::uint64_t element_size(int array, int pg_version) {
  switch (array) {
    case 0: return 4;
    case 1: return 12;
    case 2: return pg_version >= 18 ? 16 : 12;  // PostgreSQL 18 made the stats object id 64-bit
    default: return 16;
  }
}

}  // namespace

std::optional<WalEventKind> event_kind(std::uint8_t rmid, std::uint8_t info) {
  if (rmid == kRmXlog) {
    if ((info & 0xF0) == kXlogRestorePoint) return WalEventKind::RestorePoint;
    return std::nullopt;
  }
  if (rmid != kRmXact) return std::nullopt;
  switch (info & kXactOpMask) {
    case kXactCommit: return WalEventKind::Commit;
    case kXactAbort: return WalEventKind::Abort;
    case kXactCommitPrepared: return WalEventKind::CommitPrepared;
    case kXactAbortPrepared: return WalEventKind::AbortPrepared;
    default: return std::nullopt;
  }
}

RecordBody::RecordBody(WalEventKind kind, std::uint8_t info, std::uint32_t xid, std::uint32_t body_len,
                       int pg_version)
    : kind_(kind), info_(info), body_len_(body_len), pg_version_(pg_version) {
  event_.kind = kind;
  event_.xid = kind == WalEventKind::RestorePoint ? 0 : xid;
  head_.reserve(std::min(body_len, kHeadBytes));
  if (kind == WalEventKind::RestorePoint) want(0, kRestorePointSize, kRestorePoint);
  else want(0, 8, kTime);
}

void RecordBody::feed(ByteView data) {
  const std::uint64_t start = fed_;
  fed_ += data.size();
  if (!error_.empty() || complete_) return;
  const std::size_t head_want = std::min(body_len_, kHeadBytes);
  if (head_.size() < head_want) {
    std::size_t take = std::min(data.size(), head_want - head_.size());
    head_.insert(head_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
  }
  if (!layout_known_) {
    if (head_.size() < head_want || !parse_layout()) return;
    main_seen_ = main_off_;
    if (head_.size() > main_off_) {
      take_main(ByteView(head_).subspan(main_off_));
      main_seen_ = head_.size();
    }
  }
  const std::uint64_t from = std::max(start, main_seen_);
  if (from < fed_) {
    take_main(data.subspan(static_cast<std::size_t>(from - start)));
    main_seen_ = fed_;
  }
}

// Walks the data headers at the start of the body (DecodeXLogRecord): block headers, origin, top-level
// xid, then the main data's length. The block data follows the headers, the main data comes last.
bool RecordBody::parse_layout() {
  const std::size_t n = head_.size();
  std::size_t p = 0;
  std::uint64_t datatotal = 0;
  std::uint32_t main_len = 0;
  auto need = [&](std::size_t k) {
    if (p + k <= n) return true;
    error_ = "block headers run past the record's end";
    return false;
  };
  while (body_len_ - p > datatotal) {
    if (!need(1)) return false;
    const std::uint8_t id = head_[p++];
    if (id == kBlockIdDataShort || id == kBlockIdDataLong) {
      const std::size_t len_size = id == kBlockIdDataShort ? 1 : 4;
      if (!need(len_size)) return false;
      main_len = id == kBlockIdDataShort ? head_[p] : u32(&head_[p]);
      p += len_size;
      datatotal += main_len;
      break;
    }
    if (id == kBlockIdOrigin || id == kBlockIdTopLevelXid) {
      if (!need(id == kBlockIdOrigin ? 2 : 4)) return false;
      p += id == kBlockIdOrigin ? 2 : 4;
      continue;
    }
    if (id > kMaxBlockId) {
      error_ = "invalid block id " + std::to_string(id);
      return false;
    }
    if (!need(3)) return false;
    const std::uint8_t fork_flags = head_[p];
    const std::uint16_t data_len = u16(&head_[p + 1]);
    p += 3;
    if (((fork_flags & kBlockHasData) != 0) != (data_len != 0)) {
      error_ = "block data length " + std::to_string(data_len) + " does not match its flag";
      return false;
    }
    datatotal += data_len;
    if (fork_flags & kBlockHasImage) {
      if (!need(5)) return false;
      const std::uint16_t image_len = u16(&head_[p]);
      const std::uint8_t bimg_info = head_[p + 4];
      p += 5;
      // Compressed with a hole: the hole's length follows (the compression bits moved in 15).
      const bool compressed = pg_version_ >= 15 ? (bimg_info & 0x1C) != 0 : (bimg_info & 0x02) != 0;
      if ((bimg_info & kImageHasHole) && compressed) {
        if (!need(2)) return false;
        p += 2;
      }
      datatotal += image_len;
    }
    const std::size_t rel_and_block = (fork_flags & kBlockSameRel) ? 4 : 16;
    if (!need(rel_and_block)) return false;
    p += rel_and_block;
  }
  if (p + datatotal != body_len_) {
    error_ = "record length " + std::to_string(body_len_ + 24) + " does not match its data headers";
    return false;
  }
  main_off_ = body_len_ - main_len;
  layout_known_ = true;
  return true;
}

void RecordBody::want(std::uint64_t at, std::uint32_t len, int step) {
  want_at_ = at;
  want_len_ = len;
  step_ = step;
  field_.clear();
}

void RecordBody::take_main(ByteView data) {
  while (!data.empty() && !complete_ && error_.empty()) {
    if (mpos_ < want_at_) {
      const std::size_t skip = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), want_at_ - mpos_));
      mpos_ += skip;
      data = data.subspan(skip);
      continue;
    }
    const std::size_t take = std::min<std::size_t>(data.size(), want_len_ - field_.size());
    field_.insert(field_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
    mpos_ += take;
    data = data.subspan(take);
    if (field_.size() == want_len_) on_field();
  }
}

void RecordBody::on_field() {
  const std::uint8_t* f = field_.data();
  switch (step_) {
    case kRestorePoint: {
      std::memcpy(&event_.time, f, 8);
      const auto* name = reinterpret_cast<const char*>(f + 8);
      const std::size_t len = strnlen(name, kRestorePointSize - 8);
      if (len == kRestorePointSize - 8) error_ = "restore point name is not terminated";
      event_.name.assign(name, len);
      complete_ = true;
      return;
    }
    case kTime:
      std::memcpy(&event_.time, f, 8);
      // The xid of COMMIT/ABORT PREPARED is the prepared transaction's, in xl_xact_twophase.
      if (!is_prepared(kind_)) complete_ = true;
      else if ((info_ & kXactHasInfo) == 0) error_ = "prepared transaction record without xinfo";
      else want(8, 4, kXinfo);
      return;
    case kXinfo:
      xinfo_ = u32(f);
      cursor_ = 12 + ((xinfo_ & kHasDbInfo) ? 8 : 0);
      next_array(0);
      return;
    case kTwoPhase:
      event_.xid = u32(f);
      complete_ = true;
      return;
    default: {
      const int array = step_ - kArray;
      cursor_ += 4 + static_cast<std::uint64_t>(u32(f)) * element_size(array, pg_version_);
      next_array(array + 1);
      return;
    }
  }
}

void RecordBody::next_array(int from) {
  for (int i = from; i < static_cast<int>(std::size(kArrays)); ++i) {
    if ((xinfo_ & kArrays[i].flag) == 0 || (kArrays[i].commit_only && !is_commit(kind_))) continue;
    want(cursor_, 4, kArray + i);
    return;
  }
  if ((xinfo_ & kHasTwoPhase) == 0) {
    error_ = "prepared transaction record without its xid";
    return;
  }
  want(cursor_, 4, kTwoPhase);
}

std::optional<WalEvent> RecordBody::finish(std::string& error) {
  if (error_.empty() && !complete_) error_ = "main data too short for its " + std::string(wal_event_kind_name(kind_)) + " record";
  if (!error_.empty()) {
    error = error_;
    return std::nullopt;
  }
  return event_;
}

}  // namespace pgvault::walrec
