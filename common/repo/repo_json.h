// Internal to common/repo: the JSON objects of a repository (identity, marker, key record), and the
// checked reading of integers that every JSON text read from a repository shares.
#pragma once

#include <nlohmann/json.hpp>

#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "common/base/errors.h"
#include "common/base/io.h"
#include "common/base/text.h"

namespace pgvault::repo_json {

// Corruption naming `what` when `data` is not valid JSON.
nlohmann::json parse(const Bytes& data, const std::string& what);
// The object as stored: indented, with a final newline.
Bytes to_bytes(const nlohmann::json& j);

// `v` as a T when it is an integer in T's range: not a float, a boolean, a string or a number that T
// cannot hold, all of which nlohmann's get<T>() would convert, wrap or truncate without a word.
template <typename T>
std::optional<T> integer_in_range(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {  // is_number_integer() too: asked first, as get<std::int64_t>() would wrap it
    const auto n = v.get<std::uint64_t>();
    return std::in_range<T>(n) ? std::optional<T>(static_cast<T>(n)) : std::nullopt;
  }
  if (!v.is_number_integer()) return std::nullopt;
  const auto n = v.get<std::int64_t>();
  return std::in_range<T>(n) ? std::optional<T>(static_cast<T>(n)) : std::nullopt;
}

// "is not an integer from <T's min> to <T's max>", for a message naming the field.
template <typename T>
std::string not_an_integer_of() {
  return "is not an integer from " + std::to_string(std::numeric_limits<T>::min()) + " to " +
         std::to_string(std::numeric_limits<T>::max());
}

// obj[key] as a T (integer_in_range). A missing key throws nlohmann's out_of_range, as at() does; any
// other value is Corruption "<malformed> ([<whose>: ]\"<key>\" is not an integer from ... to ...)".
template <typename T>
T integer_field(const nlohmann::json& obj, const char* key, const std::string& malformed,
                const std::string& whose = "") {
  if (std::optional<T> n = integer_in_range<T>(obj.at(key))) return *n;
  throw Error(ErrorKind::Corruption, malformed + " (" + (whose.empty() ? "" : whose + ": ") + "\"" + key + "\" " +
                                         not_an_integer_of<T>() + ")");
}

// obj[key], a string holding a decimal number (parse_decimal_u64: digits only, no sign, space or leading
// zero), such as a system identifier, which JSON numbers cannot carry exactly. A missing key throws as
// at() does; anything else is Corruption "<malformed> (\"<key>\" is not a decimal number in a string)".
inline std::uint64_t decimal_string_field(const nlohmann::json& obj, const char* key, const std::string& malformed) {
  const nlohmann::json& v = obj.at(key);
  if (v.is_string()) {
    if (std::optional<std::uint64_t> n = parse_decimal_u64(v.get_ref<const std::string&>())) return *n;
  }
  throw Error(ErrorKind::Corruption, malformed + " (\"" + key + "\" is not a decimal number in a string)");
}

}  // namespace pgvault::repo_json
