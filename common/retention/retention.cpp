// retention: the policy from [retention], and the plan's totals (see retention.h).
#include "common/retention/retention.h"

#include <algorithm>

#include "common/base/errors.h"

namespace pgvault {

std::string_view action_name(RetentionAction a) { return a == RetentionAction::Keep ? "keep" : "delete"; }

RetentionPolicy retention_policy(const Config& config) {
  const auto& r = config.retention;
  // Each error names the line of the key at fault.
  auto fail = [&](const std::string& key, const std::string& what) {
    return Error(ErrorKind::Config, config.where("retention." + key) + ": [retention] " + what);
  };
  auto where = [&](const std::string& key) { return config.where("retention." + key) + ": [retention] " + key; };
  RetentionPolicy p;
  if (r.full_backups < 0) throw fail("full_backups", "full_backups must not be negative");
  p.full_backups = r.full_backups;
  if (!r.window.empty()) {
    std::int64_t w = parse_duration(r.window, where("window"));
    if (w <= 0) throw fail("window", "window must be a positive duration");
    p.window = w;
    p.window_text = r.window;
  }
  if (!r.incremental_window.empty()) {
    std::int64_t w = parse_duration(r.incremental_window, where("incremental_window"));
    if (w <= 0) throw fail("incremental_window", "incremental_window must be a positive duration");
    p.incremental_window = w;
    p.incremental_window_text = r.incremental_window;
  }
  if (r.min_full_backups < 1) throw fail("min_full_backups", "min_full_backups must be at least 1");
  p.min_full_backups = r.min_full_backups;
  p.incomplete_grace = parse_duration(r.incomplete_grace, where("incomplete_grace"));
  p.incomplete_grace_text = r.incomplete_grace;
  if (p.incomplete_grace < 3600) {
    throw fail("incomplete_grace", "incomplete_grace must be at least 1h (got \"" + r.incomplete_grace +
                                       "\"): a running base-push must never look abandoned");
  }
  if (p.full_backups == 0 && !p.window) {
    throw fail("full_backups",
               "no rule is enabled (full_backups = 0 and window = \"\"): set full_backups or window (or "
               "--full-backups / --window); retention-prune does not guess what to delete");
  }
  return p;
}

std::uint64_t RetentionPlan::backups_to_delete() const {
  return static_cast<std::uint64_t>(std::count_if(backups.begin(), backups.end(), [](const auto& b) {
    return b.action == RetentionAction::Delete;
  }));
}
std::uint64_t RetentionPlan::incomplete_to_delete() const {
  return static_cast<std::uint64_t>(std::count_if(incomplete.begin(), incomplete.end(), [](const auto& b) {
    return b.action == RetentionAction::Delete;
  }));
}
std::uint64_t RetentionPlan::wal_files_to_delete() const {
  std::uint64_t n = 0;
  for (const auto& r : wal) n += r.action == RetentionAction::Delete ? r.files : 0;
  return n;
}
std::uint64_t RetentionPlan::bytes_to_delete() const {
  std::uint64_t n = 0;
  for (const auto& b : backups) n += b.action == RetentionAction::Delete ? b.stored_bytes : 0;
  for (const auto& b : incomplete) n += b.action == RetentionAction::Delete ? b.stored_bytes : 0;
  for (const auto& r : wal) n += r.action == RetentionAction::Delete ? r.stored_bytes : 0;
  for (const auto& t : temporaries) n += t.action == RetentionAction::Delete ? t.size : 0;
  return n;
}

}  // namespace pgvault
