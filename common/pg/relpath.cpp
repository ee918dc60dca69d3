#include "common/pg/relpath.h"

#include <vector>

namespace pgvault {

namespace {

std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = path.find('/', start);
    parts.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) return parts;
    start = slash + 1;
  }
}

// A decimal OID as PostgreSQL prints it: digits, no leading zero, fits 32 bits, not 0.
std::optional<std::uint32_t> parse_oid(std::string_view s) {
  if (s.empty() || s.size() > 10 || s[0] == '0') return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v > 0xffffffffull) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

// "<relfilenode>[_fsm|_vm|_init][.<segno>]"
std::optional<RelationFile> parse_file_name(std::string_view name) {
  RelationFile f;
  if (auto dot = name.find('.'); dot != std::string_view::npos) {
    auto seg = parse_oid(name.substr(dot + 1));
    if (!seg) return std::nullopt;
    f.segment = *seg;
    name = name.substr(0, dot);
  }
  if (auto us = name.find('_'); us != std::string_view::npos) {
    std::string_view fork = name.substr(us + 1);
    if (fork == "fsm") f.fork = RelFork::Fsm;
    else if (fork == "vm") f.fork = RelFork::Vm;
    else if (fork == "init") f.fork = RelFork::Init;
    else return std::nullopt;
    name = name.substr(0, us);
  }
  auto node = parse_oid(name);
  if (!node) return std::nullopt;
  f.relfilenode = *node;
  return f;
}

bool is_tablespace_version_dir(std::string_view s) {  // PG_<major>_<catversion>
  if (s.substr(0, 3) != "PG_") return false;
  s.remove_prefix(3);
  auto us = s.find('_');
  return us != std::string_view::npos && parse_oid(s.substr(0, us)) && parse_oid(s.substr(us + 1));
}

}  // namespace

std::optional<RelationFile> parse_relation_path(std::string_view path, bool in_tablespace) {
  std::vector<std::string_view> parts = split(path);
  std::optional<std::uint32_t> db;
  if (in_tablespace) {
    if (parts.size() != 3 || !is_tablespace_version_dir(parts[0])) return std::nullopt;
    db = parse_oid(parts[1]);
  } else if (parts.size() == 3 && parts[0] == "base") {
    db = parse_oid(parts[1]);
  } else if (parts.size() == 2 && parts[0] == "global") {
    db = 0;
  }
  if (!db) return std::nullopt;
  auto f = parse_file_name(parts.back());
  if (f) f->database = *db;
  return f;
}

std::optional<std::string> strip_incremental_prefix(std::string_view path) {
  constexpr std::string_view kPrefix = "INCREMENTAL.";
  std::size_t slash = path.rfind('/');
  std::size_t name = slash == std::string_view::npos ? 0 : slash + 1;
  if (path.substr(name, kPrefix.size()) != kPrefix) return std::nullopt;
  return std::string(path.substr(0, name)) + std::string(path.substr(name + kPrefix.size()));
}

}  // namespace pgvault
