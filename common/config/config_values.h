// Inside the config library: a raw value as it arrives, the checks that turn it into a typed one, and
// the table of every key (config_keys.cpp). Not for use outside common/config/.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "common/config/config.h"

namespace pgvault::config_detail {

// A value as it arrives from TOML, the environment or a flag: TOML keeps its type, the others are text.
struct RawValue {
  std::optional<std::string> text;     // strings, and everything from env/flags
  std::optional<std::int64_t> integer; // TOML integers
  std::optional<bool> boolean;         // TOML booleans
  std::string where;                   // "pgvault.toml line 4", "AWS_REGION", "--set"
};

// Throws Config: "<where>: <key> must be <expected>".
[[noreturn]] void bad(const RawValue& v, const std::string& key, const std::string& expected);

std::string as_string(const RawValue& v, const std::string& key);
std::int64_t as_int(const RawValue& v, const std::string& key, std::int64_t lo, std::int64_t hi);
bool as_bool(const RawValue& v, const std::string& key);
std::string as_choice(const RawValue& v, const std::string& key, std::initializer_list<const char*> choices);
std::uint64_t as_size(const RawValue& v, const std::string& key);

// How a raw value of one key is checked and stored; `key` is the name within its section.
using Setter = std::function<void(Config&, const RawValue&, const std::string& key)>;

// The one definition of every key ("section.key"): name and setter (config_keys.cpp).
const std::map<std::string, Setter>& key_table();

// Sets `key` ("section.key") from `v` and records its origin; unknown keys throw Config (config.cpp).
void apply_key(Config& c, const std::string& key, const RawValue& v);
// Fills unset [repository] keys of `c` from the ambient AWS_* variables (config.cpp); `explicit_keys` are
// the "repository.KEY" names the file or a flag set.
void apply_aws_env(Config& c, const std::set<std::string>& explicit_keys);
// Checks the [repository] keys of `c` across each other; messages name `section` ("[repository]").
void validate_repository(const Config& c, const std::string& section);

// Where a [repositories.NAME] table's values come from, before they are applied (config_repositories.cpp).
struct RepositoryTable {
  std::string name;
  std::string where;                             // its header's line
  std::vector<std::pair<std::string, RawValue>> values;  // "repository.KEY" / "retention.KEY", file order
};
// Reads the [repositories] section of a TOML file: one table per repository, in file order.
std::vector<RepositoryTable> read_repository_tables(const toml::table& section, const std::string& origin);
// Builds c.repositories: [repository] (with c.retention) first, then every table applied over the
// defaults (retention over c.retention), the AWS variables when `use_env`, and the overrides naming
// "repositories.NAME.KEY"; each is validated, and names and locations must be unique.
void build_repositories(Config& c, const std::vector<RepositoryTable>& tables, bool use_env,
                        const ConfigOverrides& overrides);

}  // namespace pgvault::config_detail
