// WalScanner (wal_records.h): page headers and record framing (xlogreader.c's XLogDecodeNextRecord and
// XLogReaderValidatePageHeader), record CRCs, the end of valid WAL; record bodies go to RecordBody.
#include <cstring>
#include <memory>

#include "common/base/errors.h"
#include "common/pg/crc32c.h"
#include "common/pg/wal.h"
#include "common/pg/wal_record_body.h"
#include "common/pg/wal_records.h"

namespace pgvault {

namespace {

constexpr std::size_t kShortPageHeader = 24;     // SizeOfXLogShortPHD
constexpr std::size_t kRecordHeader = 24;        // SizeOfXLogRecord
constexpr std::size_t kRecordCrcOffset = 20;     // offsetof(XLogRecord, xl_crc)
constexpr std::uint32_t kMaxRecordLength = 1020u << 20;  // XLogRecordMaxSize
constexpr std::uint16_t kFirstIsContRecord = 0x0001;
constexpr std::uint16_t kLongHeader = 0x0002;
constexpr std::uint16_t kFirstIsOverwriteContRecord = 0x0008;
constexpr std::uint16_t kAllPageFlags = 0x000F;

template <typename T>
T load(const Bytes& b, std::size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

std::uint64_t align8(std::uint64_t v) { return (v + 7) & ~std::uint64_t{7}; }

}  // namespace

struct WalScanner::State {
  enum class Mode { Skip, SwitchPadding, RecordHeader, RecordBody, End };

  std::uint32_t segment_size;
  std::uint64_t limit;  // records starting here or later are not read
  std::string what;
  std::uint64_t pos;    // LSN of the next byte
  std::uint32_t page_size = 0;  // from the first long header
  std::uint16_t magic = 0;
  std::uint64_t system_identifier = 0;
  int pg_version = 0;
  bool in_page_header = true;
  Bytes page_header;
  Mode mode = Mode::RecordHeader;
  std::uint64_t skip = 0;          // Skip: bytes left
  bool skip_is_contrecord = false;  // Skip: the continuation of a record begun before start_lsn
  // The record being read.
  std::uint64_t rec_lsn = 0;
  Bytes rec_header;
  std::uint32_t body_left = 0;
  std::uint32_t crc = 0;
  std::unique_ptr<walrec::RecordBody> body;
  std::optional<std::uint64_t> prev;  // start of the last complete record
  WalSegmentSummary out;

  [[noreturn]] void corrupt(const std::string& why, std::uint64_t lsn) const {
    throw Error(ErrorKind::Corruption, what + ": " + why + " at " + format_lsn(lsn));
  }
  bool record_open() const {
    return (mode == Mode::RecordHeader && !rec_header.empty()) || mode == Mode::RecordBody ||
           (mode == Mode::Skip && skip_is_contrecord);
  }
  std::uint64_t page_start() const { return pos - pos % page_size; }
  std::uint32_t record_length() const { return load<std::uint32_t>(rec_header, 0); }

  void feed(ByteView data);
  std::size_t read_page_header(ByteView data);
  void first_page_header();
  bool valid_page_header(std::string& why) const;
  void after_page_header();
  std::size_t consume(ByteView data);
  std::size_t read_record_header(ByteView data);
  void start_body();
  void finish_record();
  void begin_record();
};

void WalScanner::State::feed(ByteView data) {
  while (!data.empty() && mode != Mode::End) {
    if (mode == Mode::RecordHeader && rec_header.empty() && !in_page_header && pos >= limit) return;
    std::size_t n = in_page_header ? read_page_header(data) : consume(data);
    data = data.subspan(n);
  }
}

// Collects the page header at `pos` (long at a segment's start), then checks it.
std::size_t WalScanner::State::read_page_header(ByteView data) {
  const std::size_t size = pos % segment_size == 0 ? kWalLongHeaderSize : kShortPageHeader;
  const std::size_t take = std::min(data.size(), size - page_header.size());
  page_header.insert(page_header.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
  if (page_header.size() < size) return take;
  const std::uint64_t page_lsn = pos;  // pos moves only once the header is whole
  pos += size;
  if (page_size == 0) first_page_header();
  std::string why;
  if (!valid_page_header(why)) {
    if (page_lsn == out.start_lsn) corrupt("invalid first page header (" + why + ")", page_lsn);
    if (record_open()) corrupt("invalid page header (" + why + ") where a record continues", page_lsn);
    mode = Mode::End;  // the rest was never written as WAL of this segment
  } else {
    after_page_header();
  }
  page_header.clear();
  in_page_header = false;
  return take;
}

void WalScanner::State::first_page_header() {
  WalLongHeader h = parse_wal_long_header(page_header, what);
  try {
    pg_version = pg_version_for_wal_magic(h.magic);
  } catch (const Error& e) {  // a release newer than this reader knows: its record layout is unknown
    corrupt(e.what(), pos - kWalLongHeaderSize);
  }
  if (h.segment_size != segment_size) corrupt("segment size " + std::to_string(h.segment_size), pos - kWalLongHeaderSize);
  magic = h.magic;
  system_identifier = h.system_identifier;
  page_size = h.block_size;
  out.start_lsn = pos - kWalLongHeaderSize;
}

bool WalScanner::State::valid_page_header(std::string& why) const {
  const std::uint64_t page_lsn = pos - page_header.size();
  const auto info = load<std::uint16_t>(page_header, 2);
  if (load<std::uint16_t>(page_header, 0) != magic) why = "wrong page magic";
  else if ((info & ~kAllPageFlags) != 0) why = "invalid info bits";
  else if (load<std::uint64_t>(page_header, 8) != page_lsn) why = "page address " + format_lsn(load<std::uint64_t>(page_header, 8));
  else if (((info & kLongHeader) != 0) != (page_lsn % segment_size == 0)) why = "long header flag";
  else if (page_lsn % segment_size == 0 &&
           (load<std::uint64_t>(page_header, 24) != system_identifier || load<std::uint32_t>(page_header, 32) != segment_size ||
            load<std::uint32_t>(page_header, 36) != page_size)) {
    why = "long header of another database system or layout";
  }
  return why.empty();
}

// The continuation rules: a page where a record continues says so and how much of it is left.
void WalScanner::State::after_page_header() {
  const auto info = load<std::uint16_t>(page_header, 2);
  const auto rem_len = load<std::uint32_t>(page_header, 16);
  const std::uint64_t page_lsn = pos - page_header.size();
  const bool cont = (info & kFirstIsContRecord) != 0;
  if (record_open() && (info & kFirstIsOverwriteContRecord)) {
    // The open record was never completed (recovery ended inside it); new records start on this page.
    rec_header.clear();
    body.reset();
    skip_is_contrecord = false;
    mode = Mode::RecordHeader;
    return;
  }
  if (mode == Mode::Skip && skip_is_contrecord) {
    if (!cont || rem_len != skip) corrupt("invalid continuation of the record begun before the segment", page_lsn);
    return;
  }
  if (record_open()) {
    const std::uint32_t got = mode == Mode::RecordHeader ? static_cast<std::uint32_t>(rec_header.size())
                                                         : record_length() - body_left;
    if (!cont || rem_len == 0 || rem_len != record_length() - got) {
      corrupt("invalid continuation record length " + std::to_string(rem_len), page_lsn);
    }
    return;
  }
  if (!cont) return;
  if (page_lsn != out.start_lsn) corrupt("continuation where no record is open", page_lsn);
  mode = Mode::Skip;  // the rest of a record begun in the previous segment
  skip = rem_len;
  skip_is_contrecord = true;
}

std::size_t WalScanner::State::consume(ByteView data) {
  const std::uint64_t room = page_start() + page_size - pos;
  ByteView piece = data.subspan(0, static_cast<std::size_t>(std::min<std::uint64_t>(room, data.size())));
  std::size_t n = 0;
  switch (mode) {
    case Mode::Skip:
      n = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), skip));
      skip -= n;
      break;
    case Mode::SwitchPadding: {  // raw bytes to the segment's end: no page headers are read
      const std::uint64_t left = segment_size - pos % segment_size;
      n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), left));
      pos += n;
      if (n == left) {
        in_page_header = true;
        mode = Mode::RecordHeader;
      }
      return n;
    }
    case Mode::RecordHeader:
      n = read_record_header(piece);
      break;
    case Mode::RecordBody: {
      n = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), body_left));
      ByteView part = piece.subspan(0, n);
      crc = crc32c_extend(crc, part);
      if (body) body->feed(part);
      body_left -= static_cast<std::uint32_t>(n);
      break;
    }
    case Mode::End:
      return data.size();
  }
  pos += n;
  if (mode == Mode::Skip && skip == 0) {
    skip_is_contrecord = false;
    begin_record();
  } else if (mode == Mode::RecordBody && body_left == 0) {
    finish_record();
  }
  if (pos % page_size == 0 && mode != Mode::SwitchPadding) in_page_header = true;
  return n;
}

std::size_t WalScanner::State::read_record_header(ByteView data) {
  if (rec_header.empty()) rec_lsn = pos;
  const std::size_t take = std::min(data.size(), kRecordHeader - rec_header.size());
  rec_header.insert(rec_header.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
  // xl_tot_len is always on the record's first page (records are 8-aligned): a zero or impossible
  // length is the end of valid WAL before any continuation is trusted.
  if (rec_header.size() >= 4 && record_length() < kRecordHeader) {
    mode = Mode::End;
    return take;
  }
  if (rec_header.size() == kRecordHeader) {
    pos += take;
    start_body();
    pos -= take;  // consume() advances pos
  }
  return take;
}

void WalScanner::State::start_body() {
  const std::uint32_t length = record_length();
  const auto xl_prev = load<std::uint64_t>(rec_header, 8);
  if (length > kMaxRecordLength || (prev && xl_prev != *prev)) {
    mode = Mode::End;  // too long, or a stale record of an earlier use of the segment
    return;
  }
  const auto info = load<std::uint8_t>(rec_header, 16);
  const auto rmid = load<std::uint8_t>(rec_header, 17);
  auto kind = walrec::event_kind(rmid, info);
  body.reset();
  if (kind) {
    body = std::make_unique<walrec::RecordBody>(*kind, info, load<std::uint32_t>(rec_header, 4),
                                                length - static_cast<std::uint32_t>(kRecordHeader), pg_version);
  }
  crc = 0;
  body_left = length - static_cast<std::uint32_t>(kRecordHeader);
  mode = Mode::RecordBody;
  if (body_left == 0) finish_record();
}

void WalScanner::State::finish_record() {
  crc = crc32c_extend(crc, ByteView(rec_header).subspan(0, kRecordCrcOffset));
  if (crc != load<std::uint32_t>(rec_header, kRecordCrcOffset)) {
    mode = Mode::End;  // a torn or never completed record: the end of valid WAL
    return;
  }
  out.records++;
  if (body) {
    std::string error;
    std::optional<WalEvent> event = body->finish(error);
    if (!event) corrupt(error, rec_lsn);
    event->lsn = rec_lsn;
    event->end_lsn = align8(pos);
    out.events.push_back(std::move(*event));
  }
  body.reset();
  prev = rec_lsn;
  const auto info = load<std::uint8_t>(rec_header, 16);
  const bool is_switch = load<std::uint8_t>(rec_header, 17) == walrec::kRmXlog && (info & 0xF0) == walrec::kXlogSwitch;
  rec_header.clear();
  if (is_switch) {
    out.switched = true;
    mode = pos % segment_size == 0 ? Mode::RecordHeader : Mode::SwitchPadding;
    return;
  }
  begin_record();
}

void WalScanner::State::begin_record() {
  skip = align8(pos) - pos;
  mode = skip > 0 ? Mode::Skip : Mode::RecordHeader;
}

WalScanner::WalScanner(std::uint32_t segment_size, std::uint64_t start_lsn, std::string what)
    : s_(std::make_unique<State>()) {
  if (!valid_segment_size(segment_size) || start_lsn % segment_size != 0) {
    throw Error(ErrorKind::Internal, what + ": scanner started at " + format_lsn(start_lsn) + " with segment size " +
                                         std::to_string(segment_size));
  }
  s_->segment_size = segment_size;
  s_->limit = start_lsn + segment_size;
  s_->what = std::move(what);
  s_->pos = start_lsn;
  s_->out.start_lsn = start_lsn;
}

WalScanner::~WalScanner() = default;

void WalScanner::feed(ByteView data) { s_->feed(data); }

bool WalScanner::done() const {
  const State& s = *s_;
  return s.mode == State::Mode::End || (s.mode == State::Mode::RecordHeader && s.rec_header.empty() && s.pos >= s.limit);
}

WalSegmentSummary WalScanner::summary() const {
  const State& s = *s_;
  WalSegmentSummary out = s.out;
  if (s.mode == State::Mode::RecordHeader && !s.rec_header.empty()) {
    out.open_record_lsn = s.rec_lsn;
    out.open_record_may_be_event =
        s.rec_header.size() < 18 || walrec::event_kind(s.rec_header[17], s.rec_header[16]).has_value();
  } else if (s.mode == State::Mode::RecordBody) {
    out.open_record_lsn = s.rec_lsn;
    out.open_record_may_be_event = s.body != nullptr;
  }
  return out;
}

}  // namespace pgvault
