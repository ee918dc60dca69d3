#include "common/backup/stop_segment.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/backup/interrupt.h"
#include "common/base/errors.h"
#include "common/pg/wal.h"

namespace pgvault {

void wait_for_segment(Repository& repo, const std::string& segment, int timeout_s, Progress& progress) {
  using Clock = std::chrono::steady_clock;
  auto name = WalFileName::parse(segment);
  if (!name) throw Error(ErrorKind::Internal, "bad stop segment name " + segment);
  const std::string key = keys::wal(*name);
  progress.set_phase("waiting for " + segment + " to be archived");
  spdlog::debug("waiting for {} in {}", key, repo.describe());
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  // PostgreSQL archives the stop segment right after the backup ends, usually within a few hundred ms:
  // poll often at first (a HEAD is cheap), then back off.
  auto delay = std::chrono::milliseconds(20);
  for (;;) {
    if (repo.storage().head(key)) return;
    if (Clock::now() >= deadline) {
      throw Error(ErrorKind::Transient,
                  "WAL segment " + segment + " (the backup's stop segment) was not archived into " +
                      repo.describe() + " within " + std::to_string(timeout_s) +
                      " s; check archive_command and the server log (HINT: --archive-timeout to wait longer)");
    }
    auto until = std::min(Clock::now() + delay, deadline);
    while (Clock::now() < until) {
      std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
      check_interrupt();
      progress.tick();
    }
    delay = std::min(delay * 3 / 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace pgvault
