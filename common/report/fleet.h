// archive-info over every configured repository: each one loaded on its own (an unreadable repository is
// an error for that repository only), with what it is owed (repo/owed.h) and how far it lags behind the
// most advanced one. Used by the listing, --check (check.h) and --prometheus (prometheus.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/repo/inventory.h"
#include "common/repo/owed.h"
#include "common/repo/wal_state.h"

namespace pgvault {

// One repository as archive-info saw it.
struct RepositoryView {
  std::string name;
  std::string where;                 // Repository::describe() ("" when it could not be opened)
  std::string error;                 // why it could not be read ("" = read)
  ErrorKind error_kind = ErrorKind::Io;
  std::unique_ptr<Repository> repo;  // open when `error` is empty
  Inventory inv;
  RecoveryWindow window;
  OwedStatus owed;
  std::string owed_error;            // the owed queue could not be read ("" = fine)
  // The newest archived segment (highest segment number on any timeline), "" when none, and how many
  // segments it is behind the newest one of all repositories read.
  std::string newest_segment;
  std::uint64_t newest_segno = 0;
  std::int64_t newest_mtime = 0;     // its storage time (0 when unknown)
  std::uint64_t lag_segments = 0;
  // Local state (repo/wal_state.h), read whether or not the repository could be: the last --verify and
  // what wal-push / wal-fetch recorded on this machine (nullopt: nothing recorded).
  std::optional<VerifyRecord> last_verify;
  std::optional<WalCounters> push_counters, fetch_counters;
};

// Reads every repository of `config` (narrowed by --repo to one, or all of them), in order, then fills
// the lag figures. Never throws for one repository's failure (see `error`); Interrupted still throws.
std::vector<RepositoryView> load_repositories(const Config& config);

// The newest archived segment of an inventory (nullptr when none).
const WalObject* newest_segment(const Inventory& inv);

// Fills newest_* and lag_segments of every view that was read.
void compute_lag(std::vector<RepositoryView>& views);

// Segments missing between the oldest complete backup's start segment and the newest archived segment
// (the gaps a recovery from some backup could run into), over every timeline.
std::uint64_t window_gap_segments(const Inventory& inv);

}  // namespace pgvault
