#include "common/report/figures.h"

#include "common/base/errors.h"

namespace pgvault::report {

std::int64_t duration_seconds(const BackupManifest& b) {
  try {
    return parse_iso8601(b.stop_time) - parse_iso8601(b.start_time);
  } catch (const Error&) {
    return 0;
  }
}

std::uint64_t stored_bytes(const WalTimeline& tl) {
  std::uint64_t n = 0;
  for (const auto& s : tl.segments) n += s.stored_size;
  for (const auto& s : tl.partials) n += s.stored_size;
  return n;
}

}  // namespace pgvault::report
