// Formatting shared by every tool's output: sizes and times as operators read them.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/time.h"  // format_utc: times in the tools' output

namespace pgvault {

// "512 B", "1.5 KiB", "16.0 MiB", "2.3 GiB".
std::string human_bytes(double bytes);
// "0:05", "1:02:03".
std::string human_duration(double seconds);

}  // namespace pgvault
