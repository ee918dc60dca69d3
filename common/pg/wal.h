// WAL and history file names, segment arithmetic, and WAL page headers (PostgreSQL 12+).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/errors.h"
#include "common/base/io.h"

namespace pgvault {

enum class WalFileKind {
  Segment,        // 000000010000000A000000FF
  Partial,        // 000000010000000A000000FF.partial
  History,        // 00000002.history
  BackupHistory,  // 000000010000000A000000FF.00000028.backup
};

struct WalFileName {
  WalFileKind kind = WalFileKind::Segment;
  std::uint32_t timeline = 0;
  std::uint32_t log = 0;  // high 32 bits of the segment's position (the "xlogid")
  std::uint32_t seg = 0;  // segment within the xlogid (low part)
  std::string name;       // the full file name

  // Accepts exactly the four forms above (uppercase hex, as PostgreSQL writes them); nullopt otherwise.
  static std::optional<WalFileName> parse(std::string_view name);
  // The 24-hex segment part (empty for history files).
  std::string segment_part() const { return kind == WalFileKind::History ? "" : name.substr(0, 24); }
};

inline constexpr std::uint32_t kDefaultWalSegmentSize = 16u << 20;

// Segment number (position / segment size) <-> name parts, for a given segment size.
std::uint64_t segment_number(std::uint32_t log, std::uint32_t seg, std::uint32_t seg_size);
std::string segment_file_name(std::uint32_t timeline, std::uint64_t segno, std::uint32_t seg_size);
std::string history_file_name(std::uint32_t timeline);
bool valid_segment_size(std::uint64_t size);  // power of two between 1 MiB and 1 GiB

// Parses an LSN "16/B374D848" (Config/InvalidInput error naming `what` on bad input).
std::uint64_t parse_lsn(std::string_view text, std::string_view what);
std::string format_lsn(std::uint64_t lsn);

// The long page header at the start of every WAL segment.
struct WalLongHeader {
  std::uint16_t magic = 0;
  std::uint32_t timeline = 0;
  std::uint64_t pageaddr = 0;
  std::uint64_t system_identifier = 0;
  std::uint32_t segment_size = 0;
  std::uint32_t block_size = 0;
};
inline constexpr std::size_t kWalLongHeaderSize = 40;

// Parses the first bytes of a segment; Corruption error naming `what` when they are not a valid long
// page header (wrong magic range, missing long-header flag, bad sizes).
WalLongHeader parse_wal_long_header(ByteView first_page, std::string_view what);

// Why a segment's (or .partial file's) first page header does not belong under `name` in a repository of
// database system `system_identifier` with `segment_size`-byte segments; nullopt when it does. Checks the
// system identifier (kind Foreign), the segment size, the page address (the position the name says) and
// the timeline (kind Corruption). The header's timeline may be older than the name's, never newer: the
// first segment of a new timeline starts as a copy of its parent's segment, so its first page carries
// the parent's timeline. Used by wal-fetch before every hand-over and by archive-info --verify.
std::optional<Error> check_segment_header(const WalLongHeader& h, const WalFileName& name,
                                          std::uint32_t segment_size, std::uint64_t system_identifier);

// The database system identifier of the data directory `datadir` (the first 8 bytes of
// global/pg_control, native endian), after checking the file's size (8192 bytes) and its CRC-32C, the
// last field of ControlFileData over every byte before it. ControlFileData's size differs between
// major versions, so the CRC field is found as the first 4-byte aligned offset whose value is the CRC of
// the bytes before it (a chance match is 1 in 2^32 per candidate). nullopt when the file does not
// exist; Corruption naming the file when it exists but is not a valid pg_control; Io when unreadable.
std::optional<std::uint64_t> read_control_system_identifier(const std::string& datadir);

// PostgreSQL major version whose WAL has this page magic (e.g. 0xD110 -> 15, 0xD118 -> 18); InvalidInput
// "unknown WAL page magic 0x...." for any other (a newer release than pgvault knows).
int pg_version_for_wal_magic(std::uint16_t magic);

}  // namespace pgvault
