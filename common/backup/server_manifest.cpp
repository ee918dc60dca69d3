// verify_server_manifest (backup.h): the received files against PostgreSQL's backup_manifest.
#include <nlohmann/json.hpp>

#include <bit>
#include <cctype>
#include <map>

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

struct ServerEntry {
  std::uint64_t size;
  std::string algorithm, checksum;
  bool seen = false;
};
using ServerFiles = std::map<std::string, ServerEntry>;

// One entry of "Files" (an object), by its path.
void add_server_file(ServerFiles& server, const json& f) {
  std::string path;
  if (f.contains("Path")) {
    path = f["Path"].get<std::string>();
  } else {
    Bytes raw = from_hex(f.at("Encoded-Path").get<std::string>());
    path.assign(raw.begin(), raw.end());
  }
  server[path] = ServerEntry{f.at("Size").get<std::uint64_t>(), f.value("Checksum-Algorithm", ""),
                             f.value("Checksum", ""), false};
}

// The manifest's files after checking its own checksum (SHA-256 of everything before the
// "Manifest-Checksum" line). The entries of "Files" are taken out of the parse one at a time
// (parse_taking_entries), so a cluster's tens of thousands of files never make one JSON tree; an entry's
// error waits until the checksum is checked, which names a manifest damaged in transit as such.
ServerFiles checked_server_files(const std::string& text) {
  const std::string unexpected = "server backup_manifest: unexpected content";
  ServerFiles server;
  auto take_file = [&](const json& f) {
    try {
      add_server_file(server, f);
    } catch (const std::exception& e) {
      throw Error(ErrorKind::Corruption, unexpected + ": " + e.what());
    }
  };
  TakenEntries taken;
  try {
    taken = parse_taking_entries(text, "Files", take_file, unexpected);
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
  return server;
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

std::vector<std::string> differences(ServerFiles& server, const std::vector<ReceivedFile>& files) {
  std::vector<std::string> problems;
  for (const auto& f : files) {
    std::string path = f.tablespace ? "pg_tblspc/" + std::to_string(f.tablespace) + "/" + f.path : f.path;
    auto it = server.find(path);
    if (it == server.end()) {
      problems.push_back(path + " received but not in the server's manifest");
      continue;
    }
    it->second.seen = true;
    if (std::string p = file_problem(path, f, it->second); !p.empty()) problems.push_back(std::move(p));
  }
  for (const auto& [path, e] : server) {
    if (!e.seen) problems.push_back(path + " is in the server's manifest but was not received");
  }
  return problems;
}

}  // namespace

void verify_server_manifest(const std::string& text, const std::vector<ReceivedFile>& files) {
  ServerFiles server = checked_server_files(text);
  std::vector<std::string> problems = differences(server, files);
  if (!problems.empty()) {
    std::string msg = "backup does not match the server's backup_manifest (" + std::to_string(problems.size()) +
                      " problem(s)): ";
    for (std::size_t i = 0; i < problems.size() && i < 5; ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(ErrorKind::Corruption, msg);
  }
}

}  // namespace pgvault
