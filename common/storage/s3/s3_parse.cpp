#include "common/storage/s3/s3_parse.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "common/base/text.h"
#include "common/storage/s3/s3.h"
#include "common/storage/s3/transport.h"

namespace pgvault::s3 {

std::uint64_t parse_u64(const std::string& s, bool* ok) {
  std::uint64_t v = 0;
  *ok = !s.empty() && s.size() <= 19 && s.find_first_not_of("0123456789") == std::string::npos;
  if (*ok) v = std::stoull(s);
  return v;
}

std::string etag_value(const std::string& header) {
  std::string s = header;
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return ascii_lower(s);
}

}  // namespace pgvault::s3

namespace pgvault {

std::optional<ContentRange> parse_content_range(std::string_view h) {
  if (!h.starts_with("bytes ")) return std::nullopt;
  h.remove_prefix(6);
  auto number = [&h](std::uint64_t* out, char end) {
    std::size_t stop = end == '\0' ? h.size() : h.find(end);
    if (stop == std::string_view::npos) return false;
    bool ok = false;
    *out = s3::parse_u64(std::string(h.substr(0, stop)), &ok);
    h.remove_prefix(std::min(h.size(), stop + 1));
    return ok;
  };
  ContentRange cr;
  if (h.starts_with("*/")) {
    h.remove_prefix(2);
    cr.unsatisfied = true;
    if (!number(&cr.total, '\0')) return std::nullopt;
    return cr;
  }
  if (!number(&cr.first, '-') || !number(&cr.last, '/') || !number(&cr.total, '\0')) return std::nullopt;
  if (cr.first > cr.last || cr.last >= cr.total) return std::nullopt;
  return cr;
}

}  // namespace pgvault
