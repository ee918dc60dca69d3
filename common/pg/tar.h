// A streaming tar parser: turns the tar archives of a BASE_BACKUP stream into entries (file, directory,
// symlink) and their content, in one pass, without buffering a file.
//
// Accepted: POSIX ustar (name + prefix fields), old GNU/v7 headers, GNU long names ('L') and long link
// targets ('K'), pax extended headers ('x': path, linkpath, size, mtime; 'g' is ignored), octal or
// base-256 numbers. PostgreSQL's server writes plain ustar and omits the two zero blocks that end an
// archive; the parser accepts an archive with or without them.
// Every header's checksum is verified: a damaged stream throws ErrorKind::Corruption naming the archive.
// Member names are validated before the handler sees them: an absolute path, a "..", "." or empty
// component (or a NUL byte) throws Corruption naming the member, so nothing is stored under it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/io.h"

namespace pgvault {

struct TarEntry {
  enum class Type { File, Directory, Symlink, Other };
  Type type = Type::File;
  std::string path;         // as in the archive, without a trailing '/' and without a leading "./"
  std::string link_target;  // symlinks
  std::uint64_t size = 0;   // bytes of content that follow (0 for directories and links)
  std::uint32_t mode = 0;   // permission bits (07777)
  std::int64_t mtime = 0;
  char typeflag = '0';      // the raw type byte (for messages about Other entries)
};

// Receives the entries in archive order: begin_entry, then entry_data for the content (possibly in many
// pieces, none for empty entries), then end_entry. Exceptions thrown by a handler propagate out of
// TarParser::feed unchanged.
class TarHandler {
 public:
  virtual ~TarHandler() = default;
  virtual void begin_entry(const TarEntry& entry) = 0;
  virtual void entry_data(ByteView data) = 0;
  virtual void end_entry() = 0;
};

// Why `path` is not a safe relative member name ("an absolute path", "a \"..\" component", ...), or ""
// when it is: relative, '/'-separated, no empty, "." or ".." component, no NUL byte.
std::string unsafe_member_reason(std::string_view path);

class TarParser {
 public:
  // `what` names the archive in error messages (e.g. "base.tar").
  TarParser(TarHandler& handler, std::string what);
  // Feeds the next bytes of the archive (any split).
  void feed(ByteView data);
  // Declares the end of the archive's bytes: throws Corruption when it ends inside a header or an
  // entry's content (a truncated archive).
  void finish();
  std::uint64_t entries() const { return entries_; }

 private:
  enum class State { Header, Data, Padding, Meta, End };
  struct HeaderNumbers {
    std::uint64_t size = 0, mode = 0, mtime = 0;
  };
  // The steps of reading one 512-byte header (header_): end marker, checksum, numbers, then an
  // extension header (start_meta) or an entry (next_entry, start_entry).
  void on_header();
  std::string at_header() const;  // " at offset N" of the current header, for messages
  void verify_checksum() const;
  HeaderNumbers read_numbers() const;
  void start_meta(char type, std::uint64_t size);
  TarEntry next_entry(char type, const HeaderNumbers& numbers);
  void start_entry(TarEntry e);
  void finish_meta();

  TarHandler& handler_;
  std::string what_;
  State state_ = State::Header;
  std::uint8_t header_[512];
  std::size_t header_fill_ = 0;
  std::uint64_t remaining_ = 0;  // content or padding bytes left
  std::uint64_t padding_ = 0;    // padding after the current content
  TarEntry entry_;
  char meta_type_ = 0;
  std::string meta_;
  // Overrides from a preceding long-name or pax header, applied to the next entry.
  std::string next_path_, next_link_;
  std::optional<std::uint64_t> next_size_;
  std::optional<std::int64_t> next_mtime_;
  std::uint64_t entries_ = 0;
  std::uint64_t offset_ = 0;     // bytes of the archive consumed (for messages)
};

}  // namespace pgvault
