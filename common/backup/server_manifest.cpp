// verify_server_manifest (backup.h): the received files against PostgreSQL's backup_manifest.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cctype>
#include <functional>
#include <map>
#include <numeric>
#include <span>
#include <string_view>

#include "common/backup/backup.h"
#include "common/base/errors.h"
#include "common/base/text.h"
#include "common/crypto/crypto.h"
#include "common/pg/crc32c.h"
#include "common/repo/json_entries.h"

namespace pgvault {

namespace {

using nlohmann::json;

// Our text form (crc32c_hex(): the value, most significant digit first) as PostgreSQL's backup_manifest
// prints it: the 4 bytes of its uint32 pg_crc32c in the server's memory order, each as 2 hex digits
// (pg_verifybackup compares those bytes with its own value in memory). On a little-endian server
// 0xe3069283 is "839206e3".
std::string crc32c_as_server_prints(const std::string& ours, std::endian order) {
  if (ours.size() != 8 || order == std::endian::big) return ours;
  return ours.substr(6, 2) + ours.substr(4, 2) + ours.substr(2, 2) + ours.substr(0, 2);
}

// The server's byte order is its own (the client may be another machine): a little-endian server is
// the rule, but a big-endian one (s390x) prints the value in its natural order, so both are accepted.
// Accepting the byte-swapped value too costs one bit of the 32 against a random corruption.
bool server_crc32c_matches(const std::string& server_text, const std::string& ours) {
  const std::string server = ascii_lower(server_text);
  return ours.size() == 8 && (server == crc32c_as_server_prints(ours, std::endian::little) ||
                              server == crc32c_as_server_prints(ours, std::endian::big));
}

// A server entry's values that the check reads.
struct ServerEntry {
  std::uint64_t size;
  std::string algorithm, checksum;
};

// The path of an entry of "Files" (an object).
std::string entry_path(const json& f) {
  if (f.contains("Path")) return f["Path"].get<std::string>();
  Bytes raw = from_hex(f.at("Encoded-Path").get<std::string>());
  return std::string(raw.begin(), raw.end());
}

// The manifest's "Files" entries, one at a time, to `take_file` (parse_taking_entries: a cluster's tens of
// thousands of files never make one JSON tree, nor a map of their entries), then the check of the
// manifest's own checksum (SHA-256 of everything before the "Manifest-Checksum" line). An entry's error
// waits until the checksum is checked, which names a manifest damaged in transit as such.
void take_checked_server_files(const std::string& text, const std::function<void(const json&)>& take_file) {
  const std::string unexpected = "server backup_manifest: unexpected content";
  auto take = [&](const json& f) {
    try {
      take_file(f);
    } catch (const std::exception& e) {
      throw Error(ErrorKind::Corruption, unexpected + ": " + e.what());
    }
  };
  TakenEntries taken;
  try {
    taken = parse_taking_entries(text, "Files", take, unexpected);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, std::string("server backup_manifest is not valid JSON: ") + e.what());
  }
  const json& j = taken.rest;
  auto pos = text.rfind("\"Manifest-Checksum\"");
  if (pos == std::string::npos || !j.is_object() || !j.contains("Manifest-Checksum")) {
    throw Error(ErrorKind::Corruption, "server backup_manifest has no Manifest-Checksum");
  }
  try {
    std::string expected_sum = j["Manifest-Checksum"].get<std::string>();
    if (to_hex(sha256(as_bytes(std::string_view(text).substr(0, pos)))) != expected_sum) {
      throw Error(ErrorKind::Corruption, "server backup_manifest checksum mismatch (damaged in transit)");
    }
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, unexpected + ": " + e.what());
  }
  if (taken.entry_error) std::rethrow_exception(taken.entry_error);
  refuse_untaken_entries(j, "Files", unexpected);
}

// What is wrong with received file `f` (at `path`) by the server's entry; "" when nothing.
std::string file_problem(const std::string& path, const ReceivedFile& f, const ServerEntry& e) {
  if (e.size != f.size) {
    return path + " has " + std::to_string(f.size) + " bytes, the server's manifest says " + std::to_string(e.size);
  }
  if (e.algorithm != "CRC32C") return path + ": the server's manifest has no CRC32C checksum (" + e.algorithm + ")";
  const std::string ours = crc32c_hex(f.crc32c);
  if (!server_crc32c_matches(e.checksum, ours)) {
    return path + " CRC-32C " + ours + " differs from the server's manifest " + e.checksum +
           " (PostgreSQL prints the bytes of the value as they lie in its memory: " +
           crc32c_as_server_prints(ours, std::endian::little) + " on a little-endian server)";
  }
  return "";
}

// Whether a + b sorts before c + d (as std::string compares), without joining them.
bool joined_less(std::string_view a, std::string_view b, std::string_view c, std::string_view d) {
  for (;;) {
    if (a.empty()) std::swap(a, b);
    if (c.empty()) std::swap(c, d);
    if (a.empty() || c.empty()) return a.empty() && !c.empty();
    const std::size_t n = std::min(a.size(), c.size());
    if (int cmp = a.substr(0, n).compare(c.substr(0, n)); cmp != 0) return cmp < 0;
    a.remove_prefix(n);
    c.remove_prefix(n);
  }
}

// The received files by their path in the server's manifest ("pg_tblspc/<oid>/<path>" for a tablespace's
// file): their indexes sorted once by that path, found by binary search without a string per file.
class ReceivedByPath {
 public:
  explicit ReceivedByPath(const std::vector<ReceivedFile>& files) : files_(files), order_(files.size()) {
    for (const auto& f : files) {
      if (f.tablespace) prefixes_.try_emplace(f.tablespace, "pg_tblspc/" + std::to_string(f.tablespace) + "/");
    }
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    std::sort(order_.begin(), order_.end(), [&](std::size_t x, std::size_t y) {
      return joined_less(prefix(x), files_[x].path, prefix(y), files_[y].path);
    });
  }
  // The indexes of the files received at `path` (usually one; none when it was not received).
  std::span<const std::size_t> at(std::string_view path) const {
    struct Less {
      const ReceivedByPath& r;
      bool operator()(std::size_t x, std::string_view p) const { return joined_less(r.prefix(x), r.files_[x].path, p, {}); }
      bool operator()(std::string_view p, std::size_t x) const { return joined_less(p, {}, r.prefix(x), r.files_[x].path); }
    };
    auto [first, last] = std::equal_range(order_.begin(), order_.end(), path, Less{*this});
    return {first, last};
  }
  std::string path(std::size_t i) const { return std::string(prefix(i)) + files_[i].path; }

 private:
  std::string_view prefix(std::size_t i) const {
    return files_[i].tablespace ? std::string_view(prefixes_.at(files_[i].tablespace)) : std::string_view();
  }
  const std::vector<ReceivedFile>& files_;
  std::map<std::uint32_t, std::string> prefixes_;  // "pg_tblspc/<oid>/" by oid
  std::vector<std::size_t> order_;
};

// The server's entries checked against the received files as the parse hands them over: a bit per
// received file for "seen", and only the problems kept.
class ServerFileCheck {
 public:
  explicit ServerFileCheck(const std::vector<ReceivedFile>& files) : files_(files), by_path_(files), seen_(files.size()) {}

  void take(const json& f) {
    std::string path = entry_path(f);
    const ServerEntry e{f.at("Size").get<std::uint64_t>(), f.value("Checksum-Algorithm", ""), f.value("Checksum", "")};
    const auto received = by_path_.at(path);
    if (received.empty()) not_received_.push_back(std::move(path));
    for (std::size_t i : received) {
      seen_[i] = true;
      // A path listed twice is checked by its last entry (the one a map by path would have kept).
      if (std::string p = file_problem(path, files_[i], e); !p.empty()) file_problems_[i] = std::move(p);
      else file_problems_.erase(i);
    }
  }

  // The received files' problems in their order, then the server's files not received by path.
  std::vector<std::string> problems() {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < files_.size(); ++i) {
      if (!seen_[i]) {
        out.push_back(by_path_.path(i) + " received but not in the server's manifest");
      } else if (auto it = file_problems_.find(i); it != file_problems_.end()) {
        out.push_back(std::move(it->second));
      }
    }
    std::sort(not_received_.begin(), not_received_.end());
    not_received_.erase(std::unique(not_received_.begin(), not_received_.end()), not_received_.end());
    for (const auto& path : not_received_) out.push_back(path + " is in the server's manifest but was not received");
    return out;
  }

 private:
  const std::vector<ReceivedFile>& files_;
  ReceivedByPath by_path_;
  std::vector<bool> seen_;
  std::map<std::size_t, std::string> file_problems_;  // by index into files_
  std::vector<std::string> not_received_;             // the server's paths no received file has
};

}  // namespace

void verify_server_manifest(const std::string& text, const std::vector<ReceivedFile>& files) {
  ServerFileCheck check(files);
  take_checked_server_files(text, [&](const json& f) { check.take(f); });
  std::vector<std::string> problems = check.problems();
  if (!problems.empty()) {
    std::string msg = "backup does not match the server's backup_manifest (" + std::to_string(problems.size()) +
                      " problem(s)): ";
    for (std::size_t i = 0; i < problems.size() && i < 5; ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(ErrorKind::Corruption, msg);
  }
}

}  // namespace pgvault
