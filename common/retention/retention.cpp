#include "common/retention/retention.h"

#include <algorithm>
#include <ctime>
#include <limits>
#include <map>

#include "common/base/errors.h"

namespace pgvault {

namespace {

constexpr std::uint64_t kOpen = std::numeric_limits<std::uint64_t>::max();

std::optional<std::int64_t> parse_time(const std::string& iso) {
  try {
    return parse_iso8601(iso);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// WAL from the backup's start to its stop segment is archived on its timeline.
bool restorable(const Inventory& inv, const BackupManifest& b) {
  std::vector<ChainStep> chain{ChainStep{b.timeline, 0, kOpen, 0, kOpen}};
  return check_wal_path(inv, chain, b.start_lsn, b.stop_lsn, b.stop_lsn).ok();
}

std::string plural(std::uint64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace


std::string_view action_name(RetentionAction a) { return a == RetentionAction::Keep ? "keep" : "delete"; }

std::string retention_tombstone_key(const std::string& label) { return keys::backup_prefix(label) + "deleting"; }

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

RetentionPlan plan_retention(const Inventory& inv, const RetentionPolicy& policy, std::int64_t now,
                             const RetentionExtras& extras) {
  RetentionPlan plan;
  plan.now = now;
  plan.policy = policy;
  if (policy.window) plan.window_start = now - *policy.window;
  const std::uint64_t seg = inv.wal_segment_size;
  const auto& all = inv.backups;  // oldest first (by label)
  const std::size_t n = all.size();

  std::map<std::string, std::size_t> by_label;
  for (std::size_t i = 0; i < n; ++i) by_label[all[i].label] = i;

  for (const auto& b : all) {
    BackupDecision d;
    d.label = b.label;
    d.type = b.type;
    d.parent = b.parent;
    d.timeline = b.timeline;
    d.start_wal = b.start_wal;
    d.start_segno = b.start_lsn / seg;
    d.stop_time = b.stop_time;
    d.stored_bytes = b.stored_bytes;
    d.restorable = restorable(inv, b);
    plan.backups.push_back(std::move(d));
  }
  std::vector<std::string> first_reason(n);
  auto keep = [&](std::size_t i, const std::string& rule, const std::string& reason) {
    auto& d = plan.backups[i];
    if (std::find(d.rules.begin(), d.rules.end(), rule) != d.rules.end()) return;
    d.rules.push_back(rule);
    if (first_reason[i].empty()) first_reason[i] = reason;
  };

  // The newest `count` restorable full backups, and every full backup newer than the last of them.
  auto keep_newest_fulls = [&](int count, const std::string& rule) {
    int found = 0;
    for (std::size_t k = n; k-- > 0 && found < count;) {
      if (all[k].type != "full") continue;
      if (plan.backups[k].restorable) {
        ++found;
        keep(k, rule, "one of the newest " + plural(count, "restorable full backup"));
      } else {
        keep(k, rule, "newer than the " + std::to_string(count) + "th restorable full backup (its own WAL is incomplete)");
      }
    }
  };

  if (policy.full_backups > 0) keep_newest_fulls(policy.full_backups, "full-backups");

  if (plan.window_start) {
    const std::int64_t start = *plan.window_start;
    bool base_found = false;
    for (std::size_t k = n; k-- > 0;) {
      auto stop = parse_time(all[k].stop_time);
      if (!stop) {
        keep(k, "window", "stop time \"" + all[k].stop_time + "\" unreadable: counted as inside the window");
      } else if (*stop >= start) {
        keep(k, "window", "finished inside the window (after " + format_utc(start) + ")");
      } else if (!base_found) {
        keep(k, "window", "newest backup that finished before the window start " + format_utc(start) +
                              (plan.backups[k].restorable ? "" : " (its WAL is incomplete: looking further)"));
        base_found = plan.backups[k].restorable;
      }
    }
  }

  for (std::size_t k = 0; k < n; ++k) {
    auto stop = parse_time(all[k].stop_time);
    if (stop && *stop > now) keep(k, "future", "finished after now (" + format_utc(now) + "): the clock moved back?");
  }

  keep_newest_fulls(policy.min_full_backups, "min-full-backups");
  if (n > 0) keep(n - 1, "newest", "the newest complete backup is never deleted");

  // Full-backups rule: every incremental whose chain leads to a full backup that rule keeps.
  auto root_of = [&](std::size_t k) -> std::optional<std::size_t> {
    std::set<std::size_t> seen;
    while (all[k].type != "full") {
      if (!seen.insert(k).second) return std::nullopt;
      auto it = by_label.find(all[k].parent);
      if (it == by_label.end()) return std::nullopt;
      k = it->second;
    }
    return k;
  };
  if (policy.full_backups > 0) {
    for (std::size_t k = 0; k < n; ++k) {
      if (all[k].type == "full") continue;
      auto root = root_of(k);
      const auto& rr = root ? plan.backups[*root].rules : std::vector<std::string>{};
      if (root && std::find(rr.begin(), rr.end(), "full-backups") != rr.end()) {
        keep(k, "full-backups", "depends on kept full backup " + all[*root].label);
      }
    }
  }

  // Parents of every kept backup, up the chain.
  for (std::size_t k = n; k-- > 0;) {
    if (plan.backups[k].rules.empty()) continue;
    std::size_t child = k;
    std::set<std::size_t> seen{k};
    while (all[child].type != "full" && !all[child].parent.empty()) {
      auto it = by_label.find(all[child].parent);
      if (it == by_label.end()) {
        if (first_reason[child].find("parent") == std::string::npos) {
          first_reason[child] += " (its parent " + all[child].parent + " is missing)";
        }
        break;
      }
      if (!seen.insert(it->second).second) break;
      keep(it->second, "parent", "parent of kept backup " + all[child].label);
      child = it->second;
    }
  }

  for (std::size_t k = 0; k < n; ++k) {
    auto& d = plan.backups[k];
    if (!d.rules.empty()) {
      d.action = RetentionAction::Keep;
      d.rule = d.rules.front();
      d.reason = first_reason[k];
      continue;
    }
    d.action = RetentionAction::Delete;
    d.rule = "expired";
    std::vector<std::string> why;
    if (policy.full_backups > 0) why.push_back("older than the newest " + plural(policy.full_backups, "full backup"));
    if (plan.window_start) why.push_back("finished before the window's base backup");
    if (d.type != "full") why.push_back("its full backup is not kept");
    for (std::size_t i = 0; i < why.size(); ++i) d.reason += (i ? "; " : "") + why[i];
  }

  // Incomplete backups.
  for (const auto& inc : inv.incomplete) {
    IncompleteDecision d;
    d.label = inc.label;
    d.objects = inc.objects;
    d.stored_bytes = inc.stored_bytes;
    d.newest_mtime = inc.newest_mtime;
    d.error = inc.error;
    if (!inc.error.empty()) {
      d.rule = "unreadable-manifest";
      d.reason = "its manifest exists but cannot be read; never deleted automatically";
    } else if (extras.tombstones.count(inc.label)) {
      d.action = RetentionAction::Delete;
      d.rule = "interrupted-delete";
      d.reason = "an earlier retention-prune deleted its manifest and stopped";
    } else if (inc.newest_mtime == 0) {
      d.rule = "unknown-age";
      d.reason = "the storage gives no modification time";
    } else if (now - inc.newest_mtime >= policy.incomplete_grace) {
      d.action = RetentionAction::Delete;
      d.rule = "expired-incomplete";
      d.reason = "no manifest and nothing written since " + format_utc(inc.newest_mtime) + " (grace " +
                 policy.incomplete_grace_text + ")";
    } else {
      d.rule = "grace";
      d.reason = "written to at " + format_utc(inc.newest_mtime) + ", inside the grace period (" +
                 policy.incomplete_grace_text + "): a base-push may be running";
    }
    plan.incomplete.push_back(std::move(d));
  }

  // WAL.
  std::optional<std::size_t> oldest_kept;
  std::optional<std::uint64_t> cutoff;
  std::size_t cutoff_backup = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (plan.backups[k].action != RetentionAction::Keep) continue;
    if (!oldest_kept) oldest_kept = k;
    std::uint64_t s = plan.backups[k].start_segno;
    if (!cutoff || s < *cutoff) {
      cutoff = s;
      cutoff_backup = k;
    }
  }
  if (!cutoff) {
    plan.wal_rule = "no-backups";
    plan.wal_reason = "the repository holds no complete backup: no WAL is deleted";
  } else {
    const std::string& oldest_label = all[*oldest_kept].label;
    std::string blocker;
    for (const auto& d : plan.incomplete) {
      if (d.action == RetentionAction::Delete || d.label >= oldest_label) continue;
      blocker = d.error.empty() ? "incomplete backup " + d.label + " may be a base-push still running"
                                : "backup " + d.label + " has an unreadable manifest";
      break;
    }
    if (!blocker.empty()) {
      plan.wal_rule = "blocked";
      plan.wal_reason = blocker + " and is older than the oldest kept backup " + oldest_label +
                        ": its WAL start is unknown, so no WAL is deleted";
    } else {
      plan.wal_cutoff_segno = cutoff;
      plan.wal_cutoff = segment_file_name(all[cutoff_backup].timeline, *cutoff, inv.wal_segment_size);
      plan.wal_rule = "before-oldest-kept-backup";
      plan.wal_reason = "WAL before " + plan.wal_cutoff + ", the start of the oldest kept backup " +
                        all[cutoff_backup].label + ", is deleted on every timeline";
    }
  }
  auto add_ranges = [&](std::uint32_t tli, const std::string& kind, const std::vector<WalObject>& objs) {
    WalRangeDecision* cur = nullptr;
    for (const auto& o : objs) {
      RetentionAction a = plan.wal_cutoff_segno && o.segno < *plan.wal_cutoff_segno ? RetentionAction::Delete
                                                                                     : RetentionAction::Keep;
      if (!cur || cur->action != a) {
        WalRangeDecision r;
        r.timeline = tli;
        r.kind = kind;
        r.first = o.name;
        r.action = a;
        r.rule = a == RetentionAction::Delete ? "before-oldest-kept-backup"
                                              : (plan.wal_cutoff_segno ? "needed" : plan.wal_rule);
        plan.wal.push_back(std::move(r));
        cur = &plan.wal.back();
      }
      cur->last = o.name;
      cur->files++;
      cur->stored_bytes += o.stored_size;
      if (a == RetentionAction::Delete) cur->keys.push_back(o.key);
    }
  };
  std::set<std::uint32_t> timelines;
  for (const auto& [tli, tl] : inv.wal) timelines.insert(tli);
  for (const auto& w : inv.backup_history_files) timelines.insert(w.timeline);
  for (const auto& [tli, h] : inv.histories) timelines.insert(tli);
  for (std::uint32_t tli : timelines) {
    if (auto it = inv.histories.find(tli); it != inv.histories.end()) {
      WalRangeDecision r;
      r.timeline = tli;
      r.kind = "history";
      r.first = r.last = history_file_name(tli);
      r.files = 1;
      r.rule = "history";
      plan.wal.push_back(std::move(r));
    }
    if (auto it = inv.wal.find(tli); it != inv.wal.end()) {
      add_ranges(tli, "segment", it->second.segments);
      add_ranges(tli, "partial", it->second.partials);
    }
    std::vector<WalObject> bh;
    for (const auto& w : inv.backup_history_files) {
      if (w.timeline == tli) bh.push_back(w);
    }
    std::stable_sort(bh.begin(), bh.end(), [](const WalObject& a, const WalObject& b) { return a.segno < b.segno; });
    add_ranges(tli, "backup-history", bh);
  }

  // Temporary files.
  for (const auto& t : extras.temporaries) {
    TemporaryDecision d;
    d.path = t.key;
    d.size = t.size;
    d.mtime = t.mtime;
    bool old = t.mtime > 0 && now - t.mtime >= policy.incomplete_grace;
    d.action = old ? RetentionAction::Delete : RetentionAction::Keep;
    d.rule = old ? "expired-temporary" : "grace";
    plan.temporaries.push_back(std::move(d));
  }
  return plan;
}

}  // namespace pgvault
