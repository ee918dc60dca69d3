// The stop segment: a backup is usable only once the segment holding the last byte before its stop
// LSN is in the repository (archived by the server's archive_command).
#pragma once

#include <string>

#include "common/base/progress.h"
#include "common/repo/repo.h"

namespace pgvault {

// Polls (often at first, then backing off to every 2 s) until `segment` is in the repository; throws
// Transient after `timeout_s` seconds, Interrupted on a signal. Shows the wait as the progress phase.
void wait_for_segment(Repository& repo, const std::string& segment, int timeout_s, Progress& progress);

}  // namespace pgvault
