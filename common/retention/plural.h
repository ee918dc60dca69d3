// Internal to common/retention: "1 backup", "2 backups" (plans and reports count in words).
#pragma once

#include <cstdint>
#include <string>

namespace pgvault {

inline std::string plural(std::uint64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace pgvault
