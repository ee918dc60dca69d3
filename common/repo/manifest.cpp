#include "common/repo/manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "common/base/errors.h"
#include "common/base/time.h"
#include "common/crypto/crypto.h"
#include "common/pg/wal.h"
#include "common/repo/json_entries.h"
#include "common/repo/repo_json.h"

namespace pgvault {

using nlohmann::json;

namespace {

// `digits` hex digits, returned in lowercase; else a Corruption error naming `whose` ("file <path>",
// "bundle <index>").
std::string checked_hex(std::string v, std::size_t digits, const std::string& what, const std::string& whose,
                        const char* field) {
  bool ok = v.size() == digits;
  for (char& c : v) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  }
  if (!ok) {
    throw Error(ErrorKind::Corruption, what + ": malformed manifest (" + whose + ": \"" + field + "\" is not " +
                                           std::to_string(digits) + " hex digits)");
  }
  return v;
}

Error path_error(const std::string& what, const char* entry, const std::string& path, const std::string& why) {
  return Error(ErrorKind::Corruption, what + ": " + entry + " path \"" + path + "\" " + why +
                                          ": refusing a manifest that could write outside the data directory");
}

// Checks every path and tablespace reference of a parsed manifest (see manifest_path_problem).
void check_paths(const BackupManifest& m, const std::string& what) {
  std::set<std::uint32_t> oids;
  for (const auto& t : m.tablespaces) {
    std::string loc = t.location;
    while (loc.size() > 1 && loc.back() == '/') loc.pop_back();  // a trailing slash is harmless
    std::string why = t.oid == 0                         ? "belongs to tablespace oid 0"
                      : !oids.insert(t.oid).second       ? "is listed twice"
                      : loc.empty() || loc[0] != '/'     ? "is not an absolute path"
                      : loc == "/"                       ? ""
                                                         : manifest_path_problem(loc.substr(1));
    if (why.empty()) continue;
    throw path_error(what, "tablespace", t.location, why);
  }
  auto check = [&](const char* entry, const std::string& path, std::uint32_t oid, bool dir) {
    std::string why = manifest_path_problem(path, dir);
    if (why.empty() && oid != 0 && !oids.count(oid)) why = "belongs to tablespace " + std::to_string(oid) + ", which the manifest does not list";
    // pg_tblspc/<oid> becomes the link to a listed tablespace: nothing may be written through it.
    if (why.empty() && oid == 0 && path.rfind("pg_tblspc/", 0) == 0) {
      std::string rest = path.substr(10);
      auto slash = rest.find('/');
      std::string first = rest.substr(0, slash);
      bool listed = std::any_of(m.tablespaces.begin(), m.tablespaces.end(),
                                [&](const ManifestTablespace& t) { return std::to_string(t.oid) == first; });
      if (listed && (slash != std::string::npos || !dir)) why = "lies inside the link to tablespace " + first;
    }
    if (!why.empty()) throw path_error(what, entry, path, why);
  };
  for (const auto& d : m.directories) check("directory", d.path, d.tablespace, true);
  for (const auto& f : m.files) check("file", f.path, f.tablespace, false);
}

}  // namespace

std::string manifest_path_problem(const std::string& path, bool directory) {
  if (path.empty()) return "is empty";
  if (directory && path == ".") return "";
  if (path.find('\0') != std::string::npos) return "contains a NUL byte";
  if (path[0] == '/') return "is an absolute path";
  std::size_t start = 0;
  while (true) {
    std::size_t slash = path.find('/', start);
    std::string_view c = std::string_view(path).substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (c.empty()) return "has an empty component";
    if (c == "..") return "has a \"..\" component";
    if (c == ".") return "has a \".\" component";
    if (slash == std::string::npos) return "";
    start = slash + 1;
  }
}

FileChecksum::FileChecksum(const ManifestFile& f) : f_(f) {
  if (!f.crc32c.empty()) crc_.emplace();
  if (!f.sha256.empty() || f.crc32c.empty()) sha_ = std::make_unique<Sha256>();
}

FileChecksum::~FileChecksum() = default;

void FileChecksum::update(ByteView data) {
  if (crc_) crc_->update(data);
  if (sha_) sha_->update(data);
}

std::string FileChecksum::mismatch() {
  if (crc_) {
    std::string got = crc_->hex();
    if (got != f_.crc32c) return "CRC-32C " + got + ", manifest says " + f_.crc32c;
  }
  if (sha_) {
    std::string got = to_hex(sha_->final());
    if (got != f_.sha256) return "SHA-256 " + got + ", manifest says " + (f_.sha256.empty() ? "nothing" : f_.sha256);
  }
  return "";
}

std::string_view file_kind_name(FileKind k) {
  switch (k) {
    case FileKind::Full: return "full";
    case FileKind::Unchanged: return "unchanged";
    case FileKind::Blocks: return "blocks";
  }
  return "?";
}

std::uint64_t ManifestFile::bundle_bytes() const {
  return kind == FileKind::Full ? size : kind == FileKind::Blocks ? stored_size : 0;
}

namespace {

FileKind parse_file_kind(const std::string& text, const std::string& what, const std::string& path) {
  for (FileKind k : {FileKind::Full, FileKind::Unchanged, FileKind::Blocks}) {
    if (text == file_kind_name(k)) return k;
  }
  throw Error(ErrorKind::Corruption, what + ": malformed manifest (file " + path + " has kind \"" + text + "\")");
}

// A full backup holds every file whole; an incremental names its parent and how it was taken.
void check_type(const BackupManifest& m, const std::string& what) {
  auto bad = [&](const std::string& why) { return Error(ErrorKind::Corruption, what + ": malformed manifest (" + why + ")"); };
  if (m.type == "full") {
    if (!m.parent.empty() || !m.incremental_mode.empty() || m.parent_start_lsn != 0) {
      throw bad("a full backup with a parent");
    }
    for (const auto& f : m.files) {
      if (f.kind != FileKind::Full) throw bad("file " + f.path + " of a full backup is not stored whole");
    }
  } else if (m.type == "incremental") {
    if (m.parent.empty() || m.parent == m.label) throw bad("an incremental backup without a parent");
    if (m.incremental_mode != "server" && m.incremental_mode != "client") {
      throw bad("incremental_mode \"" + m.incremental_mode + "\"");
    }
  } else {
    throw bad("type \"" + m.type + "\"");
  }
}

bool needs_format_3(const BackupManifest& m) {
  return m.type != "full" || std::any_of(m.files.begin(), m.files.end(),
                                          [](const ManifestFile& f) { return f.kind != FileKind::Full; });
}

}  // namespace

namespace {

json file_to_json(const ManifestFile& f, const std::string& label) {
  json e = {{"path", f.path},         {"tablespace", f.tablespace}, {"size", f.size},
            {"mode", f.mode},         {"mtime", f.mtime},           {"bundle", f.bundle},
            {"offset", f.offset}};
  if (!f.crc32c.empty()) e["crc32c"] = f.crc32c;
  if (!f.sha256.empty()) e["sha256"] = f.sha256;  // an entry read from a format 1 manifest
  if (f.crc32c.empty() && f.sha256.empty()) {
    throw Error(ErrorKind::Internal, "manifest of " + label + ": file " + f.path + " has no checksum");
  }
  if (f.kind != FileKind::Full) e["kind"] = std::string(file_kind_name(f.kind));
  if (f.kind == FileKind::Blocks) e["stored_size"] = f.stored_size;
  return e;
}

// The keys of a file entry that pgvault reads.
enum FileKey : unsigned { kPath, kTablespace, kSize, kMode, kMtime, kBundle, kOffset, kCrc32c, kSha256, kKind,
                          kStoredSize, kFileKeys };
constexpr std::array<std::string_view, kFileKeys> kFileKeyNames = {
    "path", "tablespace", "size", "mode", "mtime", "bundle", "offset", "crc32c", "sha256", "kind", "stored_size"};

// Fills the ManifestFiles of "files" from the members of each entry as the parse reads them (an
// EntryReader, json_entries.h), without a tree per entry. A problem with a member waits for the end of
// the entry, where its path is known (the keys come sorted, "path" after most), to name the file.
class FileReader : public EntryReader {
 public:
  FileReader(std::vector<ManifestFile>& files, const std::string& what) : files_(files), what_(what) {}
  void member(const std::string& key, json&& v) override;
  void end() override;

 private:
  bool has(FileKey k) const { return seen_ & (1u << k); }
  void note(FileKey k, const std::string& why);
  void store(FileKey k, json& v);
  template <typename T>
  void take(T& out, json& v, FileKey k);
  Error malformed(const std::string& why) const;
  ManifestFile checked();

  std::vector<ManifestFile>& files_;
  const std::string& what_;
  ManifestFile f_;           // the entry being read
  std::string kind_ = "full";
  unsigned seen_ = 0;        // a bit per FileKey read in this entry
  std::string problem_;      // the first problem with a member of this entry, e.g. "\"mode\" is not a string"
};

void FileReader::member(const std::string& key, json&& v) {
  auto it = std::find(kFileKeyNames.begin(), kFileKeyNames.end(), key);
  if (it == kFileKeyNames.end()) return;  // a later pgvault may add a key within a format: not ours to read
  auto k = static_cast<FileKey>(it - kFileKeyNames.begin());
  // Two values of one field are refused rather than the last taken: pgvault never writes them, so the
  // text is damaged or not pgvault's, and either value could be the wrong one.
  if (has(k)) return note(k, "appears twice");
  seen_ |= 1u << k;
  store(k, v);
}

void FileReader::store(FileKey k, json& v) {
  switch (k) {
    case kPath: return take(f_.path, v, k);
    case kTablespace: return take(f_.tablespace, v, k);
    case kSize: return take(f_.size, v, k);
    case kMode: return take(f_.mode, v, k);
    case kMtime: return take(f_.mtime, v, k);
    case kBundle: return take(f_.bundle, v, k);
    case kOffset: return take(f_.offset, v, k);
    case kCrc32c: return take(f_.crc32c, v, k);
    case kSha256: return take(f_.sha256, v, k);
    case kKind: return take(kind_, v, k);
    case kStoredSize: return take(f_.stored_size, v, k);
    case kFileKeys: return;
  }
}

template <typename T>
void FileReader::take(T& out, json& v, FileKey k) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return note(k, "is not a string");
    out = std::move(v.get_ref<std::string&>());
  } else {
    std::optional<T> n = repo_json::integer_in_range<T>(v);
    if (!n) return note(k, repo_json::not_an_integer_of<T>());
    out = *n;
  }
}

void FileReader::note(FileKey k, const std::string& why) {
  if (problem_.empty()) problem_ = "\"" + std::string(kFileKeyNames[k]) + "\" " + why;
}

Error FileReader::malformed(const std::string& why) const {
  return Error(ErrorKind::Corruption, what_ + ": malformed manifest (" + why + ")");
}

void FileReader::end() {
  files_.push_back(checked());
  f_ = ManifestFile{};
  kind_ = "full";
  seen_ = 0;
}

// The entry read, after the checks that need all of it; errors name the file.
ManifestFile FileReader::checked() {
  const std::string file = f_.path.empty() ? "a file entry" : "file " + f_.path;
  if (!problem_.empty()) throw malformed(file + ": " + problem_);
  for (FileKey k : {kPath, kTablespace, kSize, kMode, kMtime, kBundle, kOffset}) {
    if (!has(k)) throw malformed(file + " has no \"" + std::string(kFileKeyNames[k]) + "\"");
  }
  // Format 2 writes "crc32c", format 1 wrote "sha256": verify with whichever the entry has.
  if (has(kCrc32c)) f_.crc32c = checked_hex(std::move(f_.crc32c), 8, what_, "file " + f_.path, "crc32c");
  if (has(kSha256)) f_.sha256 = checked_hex(std::move(f_.sha256), 64, what_, "file " + f_.path, "sha256");
  if (f_.crc32c.empty() && f_.sha256.empty()) {
    throw malformed(file + " has no checksum: neither \"crc32c\" nor \"sha256\"");
  }
  f_.kind = parse_file_kind(kind_, what_, f_.path);
  if (f_.kind != FileKind::Blocks) {
    f_.stored_size = 0;  // only a Blocks entry stores it; elsewhere it is not read
  } else if (!has(kStoredSize)) {
    throw malformed(file + " has no \"stored_size\"");
  } else if (f_.stored_size == 0) {
    throw malformed(file + " has no blocks stored");
  }
  return std::move(f_);
}

}  // namespace

std::string BackupManifest::head_json() const {
  json j;
  j["format"] = needs_format_3(*this) ? 3 : std::min(format, 2);
  j["label"] = label;
  j["type"] = type;
  j["parent"] = parent;
  if (!incremental_mode.empty()) j["incremental_mode"] = incremental_mode;
  if (parent_start_lsn != 0) {
    j["parent_start_lsn"] = format_lsn(parent_start_lsn);
    j["parent_timeline"] = parent_timeline;
  }
  j["timeline"] = timeline;
  j["start_lsn"] = format_lsn(start_lsn);
  j["stop_lsn"] = format_lsn(stop_lsn);
  j["start_wal"] = start_wal;
  j["stop_wal"] = stop_wal;
  j["start_time"] = start_time;
  j["stop_time"] = stop_time;
  j["pg_version"] = pg_version;
  j["system_identifier"] = std::to_string(system_identifier);
  j["wal_segment_size"] = wal_segment_size;
  j["backup_label"] = backup_label;
  j["tablespace_map"] = tablespace_map;
  j["server_manifest_verified"] = server_manifest_verified;
  j["total_bytes"] = total_bytes;
  j["stored_bytes"] = stored_bytes;
  j["tablespaces"] = json::array();
  for (const auto& t : tablespaces) j["tablespaces"].push_back({{"oid", t.oid}, {"location", t.location}});
  j["directories"] = json::array();
  for (const auto& d : directories) {
    j["directories"].push_back({{"path", d.path}, {"tablespace", d.tablespace}, {"mode", d.mode}});
  }
  j["bundles"] = json::array();
  for (const auto& b : bundles) {
    j["bundles"].push_back(
        {{"index", b.index}, {"plain_size", b.plain_size}, {"stored_size", b.stored_size}, {"sha256", b.sha256}});
  }
  j["files"] = json::array();
  return j.dump(1);
}

void BackupManifest::require_files(const char* use) const {
  if (files_dropped) {
    throw Error(ErrorKind::Internal, std::string(use) + ": the manifest of backup " + label +
                                         " was passed without its file entries (see with_files)");
  }
}

void BackupManifest::drop_files() {
  if (!files_dropped) files_dropped = files.size();
  std::vector<ManifestFile>().swap(files);  // its memory too (clear() and = {} keep the capacity)
}

ManifestText::ManifestText(const BackupManifest& m) : m_(m) {
  m.require_files("writing a manifest");
  std::string head = m.head_json();
  // dump(1) puts each top-level key on its own line with one space of indent; a string value cannot
  // hold a raw line break, so this line is the top-level key (nested keys have more indent).
  const std::string slot = "\n \"files\": []";
  const std::size_t at = head.find(slot);
  if (at == std::string::npos) throw Error(ErrorKind::Internal, "manifest of " + m.label + ": no files slot");
  tail_ = (m.files.empty() ? "]" : "\n ]") + head.substr(at + slot.size()) + "\n";
  head.resize(at);
  piece_ = std::move(head.append("\n \"files\": ["));
}

bool ManifestText::next_piece() {
  piece_.clear();
  taken_ = 0;
  if (next_file_ < m_.files.size()) {
    // An element of the top-level array sits two spaces in: dump(1) from no indent, shifted by two.
    const std::string e = file_to_json(m_.files[next_file_], m_.label).dump(1);
    piece_.append(next_file_++ == 0 ? "\n  " : ",\n  ");
    for (char c : e) {
      piece_.push_back(c);
      if (c == '\n') piece_.append("  ");
    }
  } else if (!tail_.empty()) {
    piece_.swap(tail_);
  }
  return !piece_.empty();
}

std::size_t ManifestText::read(std::span<std::uint8_t> buf) {
  std::size_t n = 0;
  while (n < buf.size() && (taken_ < piece_.size() || next_piece())) {
    const std::size_t k = std::min(buf.size() - n, piece_.size() - taken_);
    std::copy_n(piece_.data() + taken_, k, buf.data() + n);
    taken_ += k;
    n += k;
  }
  return n;
}

std::string BackupManifest::to_json() const {
  ManifestText src(*this);
  std::string out;
  std::array<std::uint8_t, 64 << 10> buf;
  while (std::size_t n = src.read(buf)) out.append(reinterpret_cast<const char*>(buf.data()), n);
  return out;
}

// The file entries are taken out of the parse member by member (parse_taking_entries, json_entries.h:
// FileReader fills each ManifestFile from the parser's events), so reading a manifest holds the text, the
// ManifestFiles and the tree of the head, never a tree of a file entry. An entry's error waits for the
// end of the parse: a manifest of a newer format is refused as such whatever its entries hold ("files"
// sorts before "format").
BackupManifest BackupManifest::from_json(const std::string& text, const std::string& what) {
  using repo_json::integer_field;
  using repo_json::decimal_string_field;
  try {
    BackupManifest m;
    const std::string malformed = what + ": malformed manifest";
    FileReader take_files(m.files, what);
    TakenEntries taken = parse_taking_entries(text, "files", take_files, malformed);
    const json& j = taken.rest;
    if (!j.is_object()) throw Error(ErrorKind::Corruption, malformed + " (not a JSON object)");
    m.format = integer_field<int>(j, "format", malformed);
    if (m.format > kManifestFormat) {
      throw Error(ErrorKind::Config, what + ": manifest format " + std::to_string(m.format) +
                                         " is newer than this pgvault understands; upgrade pgvault");
    }
    if (taken.entry_error) std::rethrow_exception(taken.entry_error);
    refuse_untaken_entries(j, "files", malformed);
    m.label = j.at("label").get<std::string>();
    m.type = j.at("type").get<std::string>();
    m.parent = j.value("parent", "");
    m.incremental_mode = j.value("incremental_mode", "");
    if (j.contains("parent_start_lsn")) {
      m.parent_start_lsn = parse_lsn(j.at("parent_start_lsn").get<std::string>(), what + " parent_start_lsn");
      m.parent_timeline = integer_field<std::uint32_t>(j, "parent_timeline", malformed);
    }
    m.timeline = integer_field<std::uint32_t>(j, "timeline", malformed);
    m.start_lsn = parse_lsn(j.at("start_lsn").get<std::string>(), what + " start_lsn");
    m.stop_lsn = parse_lsn(j.at("stop_lsn").get<std::string>(), what + " stop_lsn");
    m.start_wal = j.at("start_wal").get<std::string>();
    m.stop_wal = j.at("stop_wal").get<std::string>();
    m.start_time = j.at("start_time").get<std::string>();
    m.stop_time = j.at("stop_time").get<std::string>();
    m.pg_version = integer_field<int>(j, "pg_version", malformed);
    m.system_identifier = decimal_string_field(j, "system_identifier", malformed);
    m.wal_segment_size = integer_field<std::uint32_t>(j, "wal_segment_size", malformed);
    m.backup_label = j.at("backup_label").get<std::string>();
    m.tablespace_map = j.value("tablespace_map", "");
    m.server_manifest_verified = j.value("server_manifest_verified", false);
    if (j.contains("total_bytes")) m.total_bytes = integer_field<std::uint64_t>(j, "total_bytes", malformed);
    if (j.contains("stored_bytes")) m.stored_bytes = integer_field<std::uint64_t>(j, "stored_bytes", malformed);
    for (const auto& t : j.at("tablespaces")) {
      m.tablespaces.push_back({integer_field<std::uint32_t>(t, "oid", malformed, "a tablespace"),
                               t.at("location").get<std::string>()});
    }
    for (const auto& d : j.at("directories")) {
      std::string path = d.at("path").get<std::string>();
      const std::string dir = "directory " + path;
      m.directories.push_back({std::move(path), integer_field<std::uint32_t>(d, "tablespace", malformed, dir),
                               integer_field<std::uint32_t>(d, "mode", malformed, dir)});
    }
    for (const auto& b : j.at("bundles")) {
      const auto index = integer_field<std::uint64_t>(b, "index", malformed, "a bundle");
      const std::string bundle = "bundle " + std::to_string(index);
      m.bundles.push_back({index, integer_field<std::uint64_t>(b, "plain_size", malformed, bundle),
                           integer_field<std::uint64_t>(b, "stored_size", malformed, bundle),
                           checked_hex(b.at("sha256").get<std::string>(), 64, what, bundle, "sha256")});
    }
    check_type(m, what);
    check_paths(m, what);
    return m;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, what + ": malformed manifest (" + e.what() + ")");
  } catch (const std::logic_error& e) {
    throw Error(ErrorKind::Corruption, what + ": malformed manifest (" + e.what() + ")");
  }
}

std::string make_backup_label(std::int64_t unix_time, bool incremental) {
  return format_utc_compact(unix_time) + (incremental ? "-I" : "-F");
}

}  // namespace pgvault
