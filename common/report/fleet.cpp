#include "common/report/fleet.h"

#include <algorithm>

#include "common/storage/factory.h"

namespace pgvault {

namespace {

// Opens and reads one repository into `v`; errors land in v.error.
void read_one(const Config& narrowed, RepositoryView& v) {
  try {
    v.repo = std::make_unique<Repository>(open_storage(narrowed), narrowed);
    v.where = v.repo->describe();
    v.repo->require_initialised();
    v.inv = load_inventory(*v.repo);
    v.window = recovery_window(v.inv);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Interrupted) throw;
    v.error = e.what();
    v.error_kind = e.kind();
    return;
  }
  try {
    v.owed = owed_status(narrowed);
  } catch (const Error& e) {
    v.owed_error = e.what();
  }
}

// Every repository of one config holds one database system: a repository whose identity differs from
// the first read one's is an error (Foreign) for that repository.
void check_identities(std::vector<RepositoryView>& views) {
  const RepositoryView* first = nullptr;
  for (auto& v : views) {
    if (!v.error.empty() || !v.inv.identity) continue;
    if (!first) {
      first = &v;
      continue;
    }
    if (v.inv.identity->system_identifier == first->inv.identity->system_identifier) continue;
    v.error = "repository " + v.name + " holds another database system (system identifier " +
              std::to_string(v.inv.identity->system_identifier) + ", repository " + first->name + " has " +
              std::to_string(first->inv.identity->system_identifier) + ")";
    v.error_kind = ErrorKind::Foreign;
  }
}

}  // namespace

const WalObject* newest_segment(const Inventory& inv) {
  const WalObject* best = nullptr;
  for (const auto& [tli, tl] : inv.wal) {
    if (tl.segments.empty()) continue;
    const WalObject& last = tl.segments.back();
    if (!best || last.segno > best->segno || (last.segno == best->segno && last.timeline > best->timeline)) {
      best = &last;
    }
  }
  return best;
}

void compute_lag(std::vector<RepositoryView>& views) {
  std::uint64_t most = 0;
  for (auto& v : views) {
    if (!v.error.empty()) continue;
    if (const WalObject* s = newest_segment(v.inv)) {
      v.newest_segment = s->name;
      v.newest_segno = s->segno;
      v.newest_mtime = s->mtime;
      most = std::max(most, s->segno);
    }
  }
  for (auto& v : views) {
    if (v.error.empty()) v.lag_segments = v.newest_segment.empty() ? most : most - v.newest_segno;
  }
}

std::uint64_t window_gap_segments(const Inventory& inv) {
  if (inv.backups.empty()) return 0;
  std::uint64_t from = UINT64_MAX;
  for (const auto& b : inv.backups) from = std::min(from, b.start_lsn / inv.wal_segment_size);
  std::uint64_t n = 0;
  for (const auto& [tli, tl] : inv.wal) {
    for (const auto& g : timeline_gaps(tl)) {
      if (g.last < from) continue;
      n += g.last - std::max(g.first, from) + 1;
    }
  }
  return n;
}

std::vector<RepositoryView> load_repositories(const Config& config) {
  std::vector<RepositoryView> views;
  for (const Config& narrowed : repository_configs(config)) {
    RepositoryView v;
    v.name = narrowed.repository.name;
    read_one(narrowed, v);
    v.last_verify = read_verify_record(narrowed);
    v.push_counters = read_wal_counters(narrowed, WalTool::Push);
    v.fetch_counters = read_wal_counters(narrowed, WalTool::Fetch);
    views.push_back(std::move(v));
  }
  check_identities(views);
  compute_lag(views);
  return views;
}

}  // namespace pgvault
