#include "common/pg/wal.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/pg/crc32c.h"

namespace pgvault {
namespace {

bool is_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

std::uint32_t hex32(std::string_view s) { return static_cast<std::uint32_t>(std::stoul(std::string(s), nullptr, 16)); }

}  // namespace

std::optional<WalFileName> WalFileName::parse(std::string_view name) {
  WalFileName w;
  w.name = std::string(name);
  if (name.size() == 16 && name.substr(8) == ".history" && is_hex(name.substr(0, 8))) {
    w.kind = WalFileKind::History;
    w.timeline = hex32(name.substr(0, 8));
    return w.timeline == 0 ? std::nullopt : std::optional(w);
  }
  if (name.size() < 24 || !is_hex(name.substr(0, 24))) return std::nullopt;
  std::string_view rest = name.substr(24);
  if (rest.empty()) {
    w.kind = WalFileKind::Segment;
  } else if (rest == ".partial") {
    w.kind = WalFileKind::Partial;
  } else if (rest.size() == 16 && rest[0] == '.' && is_hex(rest.substr(1, 8)) && rest.substr(9) == ".backup") {
    w.kind = WalFileKind::BackupHistory;
  } else {
    return std::nullopt;
  }
  w.timeline = hex32(name.substr(0, 8));
  w.log = hex32(name.substr(8, 8));
  w.seg = hex32(name.substr(16, 8));
  if (w.timeline == 0) return std::nullopt;
  return w;
}

std::uint64_t segment_number(std::uint32_t log, std::uint32_t seg, std::uint32_t seg_size) {
  std::uint64_t per_id = 0x100000000ull / seg_size;
  return static_cast<std::uint64_t>(log) * per_id + seg;
}

std::string segment_file_name(std::uint32_t timeline, std::uint64_t segno, std::uint32_t seg_size) {
  std::uint64_t per_id = 0x100000000ull / seg_size;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X%08X%08X", timeline, static_cast<std::uint32_t>(segno / per_id),
                static_cast<std::uint32_t>(segno % per_id));
  return buf;
}

std::string history_file_name(std::uint32_t timeline) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X.history", timeline);
  return buf;
}

bool valid_segment_size(std::uint64_t size) {
  return size >= (1u << 20) && size <= (1u << 30) && (size & (size - 1)) == 0;
}

std::uint64_t parse_lsn(std::string_view text, std::string_view what) {
  auto slash = text.find('/');
  auto bad = [&]() {
    return Error(ErrorKind::InvalidInput,
                 std::string(what) + ": \"" + std::string(text) + "\" is not an LSN (expected e.g. 0/16B3748)");
  };
  if (slash == std::string_view::npos || slash == 0 || slash > 8 || text.size() - slash - 1 == 0 ||
      text.size() - slash - 1 > 8 || text.find('/', slash + 1) != std::string_view::npos) {
    throw bad();
  }
  auto hi = text.substr(0, slash), lo = text.substr(slash + 1);
  for (char c : text) {
    if (c != '/' && !std::isxdigit(static_cast<unsigned char>(c))) throw bad();
  }
  return (static_cast<std::uint64_t>(std::stoul(std::string(hi), nullptr, 16)) << 32) |
         std::stoul(std::string(lo), nullptr, 16);
}

std::string format_lsn(std::uint64_t lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<std::uint32_t>(lsn >> 32), static_cast<std::uint32_t>(lsn));
  return buf;
}

int pg_version_for_wal_magic(std::uint16_t magic) {
  // XLOG_PAGE_MAGIC of each release (checked against the first page of each version's initdb).
  switch (magic) {
    case 0xD101: return 12;
    case 0xD106: return 13;
    case 0xD10D: return 14;
    case 0xD110: return 15;
    case 0xD113: return 16;
    case 0xD116: return 17;
    case 0xD118: return 18;
    default: break;
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%04X", magic);
  throw Error(ErrorKind::InvalidInput,
              std::string("unknown WAL page magic ") + hex + " (pgvault supports PostgreSQL 15 to 18)");
}

WalLongHeader parse_wal_long_header(ByteView page, std::string_view what) {
  auto fail = [&](const std::string& why) {
    return Error(ErrorKind::Corruption, std::string(what) + ": not a WAL segment (" + why + ")");
  };
  if (page.size() < kWalLongHeaderSize) throw fail("file shorter than a WAL page header");
  // XLogLongPageHeaderData, little-endian on every platform PostgreSQL 15 packages exist for that we
  // support (x86_64, arm64): magic u16 @0, info u16 @2, tli u32 @4, pageaddr u64 @8, rem_len u32 @16,
  // (pad) sysid u64 @24, seg_size u32 @32, xlog_blcksz u32 @36.
  auto u16 = [&](std::size_t o) { std::uint16_t v; std::memcpy(&v, page.data() + o, 2); return v; };
  auto u32 = [&](std::size_t o) { std::uint32_t v; std::memcpy(&v, page.data() + o, 4); return v; };
  auto u64 = [&](std::size_t o) { std::uint64_t v; std::memcpy(&v, page.data() + o, 8); return v; };
  WalLongHeader h;
  h.magic = u16(0);
  std::uint16_t info = u16(2);
  h.timeline = u32(4);
  h.pageaddr = u64(8);
  h.system_identifier = u64(24);
  h.segment_size = u32(32);
  h.block_size = u32(36);
  char magic[16];
  std::snprintf(magic, sizeof magic, "0x%04X", h.magic);
  if (h.magic < 0xD000 || h.magic > 0xD1FF) throw fail(std::string("page magic ") + magic);
  if ((info & 0x0002) == 0) throw fail("first page has no long header");
  if (!valid_segment_size(h.segment_size)) throw fail("segment size " + std::to_string(h.segment_size));
  if (h.block_size < 1024 || h.block_size > 65536 || (h.block_size & (h.block_size - 1)) != 0) {
    throw fail("block size " + std::to_string(h.block_size));
  }
  return h;
}

std::optional<Error> check_segment_header(const WalLongHeader& h, const WalFileName& name,
                                          std::uint32_t segment_size, std::uint64_t system_identifier) {
  if (h.system_identifier != system_identifier) {
    return Error(ErrorKind::Foreign, "segment of database system " + std::to_string(h.system_identifier) +
                                         ", expected " + std::to_string(system_identifier));
  }
  if (h.segment_size != segment_size) {
    return Error(ErrorKind::Corruption, "segment header says segment size " + std::to_string(h.segment_size) +
                                            ", repository uses " + std::to_string(segment_size));
  }
  const std::uint64_t position = segment_number(name.log, name.seg, segment_size) * segment_size;
  if (h.pageaddr != position) {
    return Error(ErrorKind::Corruption, "segment header says position " + format_lsn(h.pageaddr) +
                                            ", name says " + format_lsn(position));
  }
  if (h.timeline == 0 || h.timeline > name.timeline) {
    return Error(ErrorKind::Corruption, "segment header says timeline " + std::to_string(h.timeline) +
                                            ", name says " + std::to_string(name.timeline));
  }
  return std::nullopt;
}

namespace {

constexpr std::size_t kControlFileSize = 8192;  // PG_CONTROL_FILE_SIZE, every version since 8.x

std::optional<Bytes> read_control_file(const std::string& path) {
  std::unique_ptr<FileSource> src;
  try {
    src = std::make_unique<FileSource>(path);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound) return std::nullopt;
    throw;
  }
  Bytes data(kControlFileSize + 1);
  std::size_t got = 0;
  while (got < data.size()) {
    std::size_t n = src->read(std::span(data).subspan(got));
    if (n == 0) break;
    got += n;
  }
  data.resize(got);
  return data;
}

// Offset of the CRC field, or 0 when no offset holds the CRC of the bytes before it.
std::size_t control_crc_offset(ByteView d) {
  std::uint32_t crc = crc32c(d.first(16));
  for (std::size_t o = 16; o + 4 <= 1024; o += 4) {
    std::uint32_t stored;
    std::memcpy(&stored, d.data() + o, 4);
    if (stored == crc) return o;
    crc = crc32c_extend(crc, d.subspan(o, 4));
  }
  return 0;
}

}  // namespace

std::optional<std::uint64_t> read_control_system_identifier(const std::string& datadir) {
  const std::string path = datadir + "/global/pg_control";
  // PostgreSQL rewrites pg_control in place; a read racing that write may be torn, so read again.
  std::string why;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto data = read_control_file(path);
    if (!data) return std::nullopt;
    if (data->size() != kControlFileSize) {
      why = std::to_string(data->size()) + " bytes, expected " + std::to_string(kControlFileSize);
    } else if (control_crc_offset(*data) == 0) {
      why = "checksum mismatch";
    } else {
      std::uint64_t sysid;
      std::memcpy(&sysid, data->data(), 8);
      return sysid;
    }
  }
  throw Error(ErrorKind::Corruption, path + ": not a valid pg_control file (" + why + ")");
}

}  // namespace pgvault
