// Inside the config library: a raw value as it arrives, the checks that turn it into a typed one, and
// the table of every key (config_keys.cpp). Not for use outside common/config/.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>

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

}  // namespace pgvault::config_detail
