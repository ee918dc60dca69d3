#include "common/config/config_values.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>

#include "common/base/errors.h"

namespace pgvault {

namespace config_detail {

[[noreturn]] void bad(const RawValue& v, const std::string& key, const std::string& expected) {
  throw Error(ErrorKind::Config, v.where + ": " + key + " must be " + expected);
}

std::string as_string(const RawValue& v, const std::string& key) {
  if (!v.text) bad(v, key, "a string");
  return *v.text;
}

std::int64_t as_int(const RawValue& v, const std::string& key, std::int64_t lo, std::int64_t hi) {
  std::int64_t n = 0;
  if (v.integer) {
    n = *v.integer;
  } else if (v.text) {
    const std::string& s = *v.text;
    char* end = nullptr;
    errno = 0;
    long long parsed = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0) {
      bad(v, key, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    n = parsed;
  } else {
    bad(v, key, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  if (n < lo || n > hi) {
    bad(v, key, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " +
                    std::to_string(n) + ")");
  }
  return n;
}

bool as_bool(const RawValue& v, const std::string& key) {
  if (v.boolean) return *v.boolean;
  if (v.text) {
    if (*v.text == "true" || *v.text == "1" || *v.text == "on") return true;
    if (*v.text == "false" || *v.text == "0" || *v.text == "off") return false;
  }
  bad(v, key, "true or false");
}

std::string as_choice(const RawValue& v, const std::string& key, std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) {
    if (v.text && *v.text == c) return c;
    list += list.empty() ? "" : " | ";
    list += '"';
    list += c;
    list += '"';
  }
  bad(v, key, "one of " + list);
}

std::uint64_t as_size(const RawValue& v, const std::string& key) {
  if (v.integer) {
    if (*v.integer <= 0) bad(v, key, "a positive size");
    return static_cast<std::uint64_t>(*v.integer);
  }
  if (!v.text) bad(v, key, "a size such as \"64MiB\"");
  return parse_size(*v.text, v.where + ": " + key);
}

}  // namespace config_detail

std::uint64_t parse_size(const std::string& text, const std::string& what) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  static const std::map<std::string, std::uint64_t> units = {
      {"", 1},          {"B", 1},           {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
      {"TiB", 1ull << 40}, {"kB", 1000},     {"KB", 1000},        {"MB", 1000000},     {"GB", 1000000000},
  };
  auto u = units.find(unit);
  if (i == 0 || u == units.end() || i > 15) {
    throw Error(ErrorKind::Config, what + " must be a size such as \"64MiB\" (got \"" + text + "\")");
  }
  const std::uint64_t n = std::stoull(text.substr(0, i));
  if (n > std::numeric_limits<std::uint64_t>::max() / u->second) {  // the product would wrap
    throw Error(ErrorKind::Config, what + " is too large (got \"" + text + "\")");
  }
  return n * u->second;
}

std::int64_t parse_duration(const std::string& text, const std::string& what) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  static const std::map<std::string, std::int64_t> units = {
      {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 7 * 86400}};
  auto u = units.find(unit);
  if (i == 0 || u == units.end() || i > 12) {
    throw Error(ErrorKind::Config,
                what + " must be a duration such as \"30d\" (units s, m, h, d, w; got \"" + text + "\")");
  }
  return std::stoll(text.substr(0, i)) * u->second;
}

}  // namespace pgvault
