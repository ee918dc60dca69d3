// Small text helpers shared by every library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgvault {

// ASCII case mapping: 'A'..'Z' <-> 'a'..'z', every other byte (UTF-8 included) unchanged; the locale
// is never consulted. For protocol and file-format text: HTTP header names, ETags, configuration
// parameter names, hex digits printed by a server.
std::string ascii_lower(std::string_view s);
std::string ascii_upper(std::string_view s);

// `s` as a decimal number when it is one exactly: 1 to 20 ASCII digits, no sign, space or other byte, no
// leading zero (a leading zero makes PostgreSQL's strtoul(..., 0) read octal), in range; else nullopt.
// std::stoull would skip leading space, accept a sign (and wrap a negative), and stop at the first
// non-digit.
std::optional<std::uint64_t> parse_decimal_u64(std::string_view s);

// A label value of the Prometheus text format, escaped (backslash, double quote, newline).
std::string prometheus_label_value(std::string_view s);

}  // namespace pgvault
