#include "common/pg/tar.h"

#include <algorithm>
#include <cstring>

#include "common/base/errors.h"

namespace pgvault {

namespace {

constexpr std::size_t kBlock = 512;

// A numeric header field: octal digits (space/NUL padded), or base-256 when the high bit of the first
// byte is set (GNU extension for values that do not fit, e.g. sizes of 8 GiB and more).
bool parse_number(const std::uint8_t* p, std::size_t n, std::uint64_t& out) {
  if (n > 0 && (p[0] & 0x80)) {
    if (p[0] & 0x40) return false;  // negative
    std::uint64_t v = p[0] & 0x3f;
    for (std::size_t i = 1; i < n; ++i) {
      if (v >> 56) return false;
      v = (v << 8) | p[i];
    }
    out = v;
    return true;
  }
  std::size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  std::uint64_t v = 0;
  bool any = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v >> 61) return false;
    v = v * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < n; ++i) {
    if (p[i] != ' ' && p[i] != 0) return false;
  }
  out = any ? v : 0;
  return true;
}

std::string field(const std::uint8_t* p, std::size_t n) {
  std::size_t len = 0;
  while (len < n && p[len] != 0) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

TarEntry::Type entry_type(char typeflag) {
  switch (typeflag) {
    case '0':
    case '\0':
    case '7': return TarEntry::Type::File;
    case '5': return TarEntry::Type::Directory;
    case '2': return TarEntry::Type::Symlink;
    default: return TarEntry::Type::Other;
  }
}

std::string clean_path(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  while (path.rfind("./", 0) == 0) path.erase(0, 2);
  return path;
}

}  // namespace

std::string unsafe_member_reason(std::string_view path) {
  if (path.empty()) return "an empty name";
  if (path.front() == '/') return "an absolute path";
  if (path.find('\0') != std::string_view::npos) return "a NUL byte in the name";
  std::size_t start = 0;
  for (;;) {
    std::size_t end = path.find('/', start);
    std::string_view part = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part.empty()) return "an empty path component";
    if (part == "..") return "a \"..\" component";
    if (part == ".") return "a \".\" component";
    if (end == std::string_view::npos) return "";
    start = end + 1;
  }
}

TarParser::TarParser(TarHandler& handler, std::string what) : handler_(handler), what_(std::move(what)) {}

void TarParser::feed(ByteView data) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    switch (state_) {
      case State::Header: {
        std::size_t n = std::min(kBlock - header_fill_, data.size() - pos);
        std::memcpy(header_ + header_fill_, data.data() + pos, n);
        header_fill_ += n;
        pos += n;
        offset_ += n;
        if (header_fill_ == kBlock) {
          header_fill_ = 0;
          on_header();
        }
        break;
      }
      case State::Data:
      case State::Meta: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size() - pos));
        ByteView piece = data.subspan(pos, n);
        if (state_ == State::Meta) meta_.append(reinterpret_cast<const char*>(piece.data()), piece.size());
        else handler_.entry_data(piece);
        pos += n;
        offset_ += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          if (state_ == State::Meta) finish_meta();
          else handler_.end_entry();
          remaining_ = padding_;
          state_ = padding_ ? State::Padding : State::Header;
        }
        break;
      }
      case State::Padding: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size() - pos));
        pos += n;
        offset_ += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::Header;
        break;
      }
      case State::End: {
        for (; pos < data.size(); ++pos, ++offset_) {
          if (data[pos] != 0) {
            throw Error(ErrorKind::Corruption,
                        what_ + ": data after the end-of-archive marker at offset " + std::to_string(offset_));
          }
        }
        break;
      }
    }
  }
}

void TarParser::on_header() {
  if (std::all_of(header_, header_ + kBlock, [](std::uint8_t b) { return b == 0; })) {
    state_ = State::End;  // end-of-archive marker (zero blocks); only zeros may follow
    return;
  }
  verify_checksum();
  HeaderNumbers numbers = read_numbers();
  char type = static_cast<char>(header_[156]);
  if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
    start_meta(type, numbers.size);
    return;
  }
  start_entry(next_entry(type, numbers));
}

std::string TarParser::at_header() const { return " at offset " + std::to_string(offset_ - kBlock); }

void TarParser::verify_checksum() const {
  std::uint64_t stored_sum = 0;
  if (!parse_number(header_ + 148, 8, stored_sum)) {
    throw Error(ErrorKind::Corruption, what_ + ": malformed tar header" + at_header());
  }
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : header_[i];
  if (sum != stored_sum) {
    throw Error(ErrorKind::Corruption, what_ + ": tar header checksum mismatch" + at_header() + " (damaged stream)");
  }
}

TarParser::HeaderNumbers TarParser::read_numbers() const {
  HeaderNumbers n;
  if (!parse_number(header_ + 124, 12, n.size) || !parse_number(header_ + 100, 8, n.mode) ||
      !parse_number(header_ + 136, 12, n.mtime)) {
    throw Error(ErrorKind::Corruption, what_ + ": malformed number in tar header" + at_header());
  }
  return n;
}

// A long-name ('L', 'K') or pax ('x', 'g') header: its content is read into meta_ and applies to the
// next entry.
void TarParser::start_meta(char type, std::uint64_t size) {
  if (size > (1u << 20)) {
    throw Error(ErrorKind::Corruption, what_ + ": oversized tar extension header" + at_header());
  }
  meta_type_ = type;
  meta_.clear();
  remaining_ = size;
  padding_ = (kBlock - size % kBlock) % kBlock;
  state_ = State::Meta;
  if (size == 0) {
    finish_meta();
    state_ = State::Header;
  }
}

// The entry this header describes, with the overrides of the extension headers before it applied (and
// consumed), its name validated.
TarEntry TarParser::next_entry(char type, const HeaderNumbers& numbers) {
  TarEntry e;
  std::string name = field(header_, 100);
  if (std::memcmp(header_ + 257, "ustar", 5) == 0) {
    std::string prefix = field(header_ + 345, 155);
    if (!prefix.empty()) name = prefix + "/" + name;
  }
  if (!next_path_.empty()) name = next_path_;
  e.path = clean_path(name);
  e.link_target = next_link_.empty() ? field(header_ + 157, 100) : next_link_;
  e.mode = static_cast<std::uint32_t>(numbers.mode & 07777);
  e.mtime = next_mtime_ ? *next_mtime_ : static_cast<std::int64_t>(numbers.mtime);
  e.size = next_size_ ? *next_size_ : numbers.size;
  e.typeflag = type;
  e.type = entry_type(type);
  next_path_.clear();
  next_link_.clear();
  next_size_.reset();
  next_mtime_.reset();
  // Directories and links carry no content even if a size is recorded; hard links ('1') neither.
  if (e.type == TarEntry::Type::Directory || e.type == TarEntry::Type::Symlink || type == '1') e.size = 0;
  if (e.path.empty()) throw Error(ErrorKind::Corruption, what_ + ": tar entry without a name" + at_header());
  if (std::string why = unsafe_member_reason(e.path); !why.empty()) {
    throw Error(ErrorKind::Corruption, what_ + ": tar member \"" + e.path + "\"" + at_header() + " has " + why +
                                           " (a member must stay inside the archive's directory)");
  }
  return e;
}

void TarParser::start_entry(TarEntry e) {
  entry_ = std::move(e);
  ++entries_;
  handler_.begin_entry(entry_);
  remaining_ = entry_.size;
  padding_ = (kBlock - entry_.size % kBlock) % kBlock;
  if (entry_.size == 0) {
    handler_.end_entry();
    state_ = State::Header;
  } else {
    state_ = State::Data;
  }
}

void TarParser::finish_meta() {
  if (meta_type_ == 'L' || meta_type_ == 'K') {
    std::string v = meta_.substr(0, meta_.find('\0'));
    (meta_type_ == 'L' ? next_path_ : next_link_) = v;
    return;
  }
  if (meta_type_ == 'g') return;
  // pax records: "<len> <key>=<value>\n"
  std::size_t pos = 0;
  while (pos < meta_.size()) {
    std::size_t sp = meta_.find(' ', pos);
    if (sp == std::string::npos) break;
    std::uint64_t len = 0;
    try {
      len = std::stoull(meta_.substr(pos, sp - pos));
    } catch (const std::exception&) {
      throw Error(ErrorKind::Corruption, what_ + ": malformed pax header");
    }
    if (len == 0 || pos + len > meta_.size() || len < sp - pos + 2) {
      throw Error(ErrorKind::Corruption, what_ + ": malformed pax header");
    }
    std::string rec = meta_.substr(sp + 1, pos + len - sp - 2);  // without the trailing newline
    pos += len;
    auto eq = rec.find('=');
    if (eq == std::string::npos) continue;
    std::string key = rec.substr(0, eq), value = rec.substr(eq + 1);
    try {
      if (key == "path") next_path_ = value;
      else if (key == "linkpath") next_link_ = value;
      else if (key == "size") next_size_ = std::stoull(value);
      else if (key == "mtime") next_mtime_ = static_cast<std::int64_t>(std::stod(value));
    } catch (const std::exception&) {
      throw Error(ErrorKind::Corruption, what_ + ": malformed pax value for " + key);
    }
  }
}

void TarParser::finish() {
  if (state_ == State::End) return;
  if (state_ == State::Header && header_fill_ == 0 && next_path_.empty() && next_link_.empty() && !next_size_) return;
  throw Error(ErrorKind::Corruption, what_ + ": archive truncated at offset " + std::to_string(offset_) +
                                         (state_ == State::Data ? " inside " + entry_.path : std::string()));
}

}  // namespace pgvault
