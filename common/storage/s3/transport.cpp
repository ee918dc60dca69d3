#include "common/storage/s3/transport.h"

#include <algorithm>
#include <cctype>

namespace pgvault {

std::string HttpResponse::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return {};
}

bool HttpResponse::has_header(std::string_view lower_name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return h.first == lower_name; });
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace pgvault
