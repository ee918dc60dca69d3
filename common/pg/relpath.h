// Relation file paths of a data directory, as BASE_BACKUP sends them: which files hold relation blocks
// (the files whose changed blocks an incremental backup can store alone).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgvault {

enum class RelFork { Main, Fsm, Vm, Init };

struct RelationFile {
  std::uint32_t database = 0;     // 0 for global/
  std::uint32_t relfilenode = 0;
  RelFork fork = RelFork::Main;
  std::uint32_t segment = 0;      // the .<segno> suffix, 0 when none
};

// `path` relative to the data directory (base/<dboid>/<relfilenode>[_fsm|_vm|_init][.<segno>],
// global/<relfilenode>...) or, with `in_tablespace`, relative to a tablespace location
// (PG_<major>_<catversion>/<dboid>/<relfilenode>...). nullopt for any other file (temporary relations
// t<backend>_<n>, PG_VERSION, pg_filenode.map, ...). Numbers must be decimal without leading zeros and
// non-zero (relfilenode, database), as PostgreSQL names them.
std::optional<RelationFile> parse_relation_path(std::string_view path, bool in_tablespace);

// "INCREMENTAL.<name>" in the last path component -> the path without the prefix; nullopt when the
// last component does not start with it (PostgreSQL 17+ sends changed blocks of <name> in such a file).
std::optional<std::string> strip_incremental_prefix(std::string_view path);

}  // namespace pgvault
