// Figures both renderers of the inventory show (report-internal).
#pragma once

#include <cstdint>

#include "common/repo/inventory.h"

namespace pgvault::report {

// A backup's stop time minus its start time; 0 when either does not parse.
std::int64_t duration_seconds(const BackupManifest& b);

// Repository bytes of a timeline's segments and partial segments.
std::uint64_t stored_bytes(const WalTimeline& tl);

}  // namespace pgvault::report
