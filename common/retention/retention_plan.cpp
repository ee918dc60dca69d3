// retention: plan_retention(), the pure decision of what the policy keeps (see retention.h), in named
// steps: the backups' keep rules, the incomplete backups, the WAL cutoff and ranges, temporary files.
#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "common/base/errors.h"
#include "common/repo/chain.h"
#include "common/retention/plural.h"
#include "common/retention/retention.h"

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

// WAL from the backup's start to its stop segment is archived on its timeline (and an incremental's
// chain is complete).
bool restorable(const Inventory& inv, const BackupManifest& b) {
  std::vector<ChainStep> chain{ChainStep{b.timeline, 0, kOpen, 0, kOpen}};
  if (!check_wal_path(inv, chain, b.start_lsn, b.stop_lsn, b.stop_lsn).ok()) return false;
  return b.type == "full" || resolve_chain(inv, b).complete();
}

// The complete backups (oldest first) and the keep rules found for each so far.
class BackupRules {
 public:
  BackupRules(const Inventory& inv, std::vector<BackupDecision>& decisions, std::optional<std::int64_t> incr_start)
      : all(inv.backups), d(decisions), incremental_start(incr_start), first_reason_(inv.backups.size()) {
    for (std::size_t i = 0; i < all.size(); ++i) by_label_[all[i].label] = i;
  }
  const std::vector<BackupManifest>& all;
  std::vector<BackupDecision>& d;
  const std::optional<std::int64_t> incremental_start;  // now - incremental_window

  // An incremental backup that finished before the incremental window: full-backups and window pass it by.
  bool outside_incremental_window(std::size_t i) const {
    if (all[i].type == "full" || !incremental_start) return false;
    auto stop = parse_time(all[i].stop_time);
    return stop && *stop < *incremental_start;
  }

  // Records that `rule` keeps backup i (the first reason given is the one reported).
  void keep(std::size_t i, const std::string& rule, const std::string& reason) {
    auto& rules = d[i].rules;
    if (std::find(rules.begin(), rules.end(), rule) != rules.end()) return;
    rules.push_back(rule);
    if (first_reason_[i].empty()) first_reason_[i] = reason;
  }
  bool kept_by(std::size_t i, const std::string& rule) const {
    return std::find(d[i].rules.begin(), d[i].rules.end(), rule) != d[i].rules.end();
  }
  std::optional<std::size_t> index_of(const std::string& label) const {
    auto it = by_label_.find(label);
    return it == by_label_.end() ? std::nullopt : std::optional<std::size_t>(it->second);
  }
  std::string& reason(std::size_t i) { return first_reason_[i]; }

 private:
  std::map<std::string, std::size_t> by_label_;
  std::vector<std::string> first_reason_;
};

std::vector<BackupDecision> initial_decisions(const Inventory& inv) {
  std::vector<BackupDecision> out;
  for (const auto& b : inv.backups) {
    BackupDecision d;
    d.label = b.label;
    d.type = b.type;
    d.parent = b.parent;
    d.timeline = b.timeline;
    d.start_wal = b.start_wal;
    d.start_segno = b.start_lsn / inv.wal_segment_size;
    d.stop_time = b.stop_time;
    d.stored_bytes = b.stored_bytes;
    d.restorable = restorable(inv, b);
    out.push_back(std::move(d));
  }
  return out;
}

// The newest `count` restorable full backups, and every full backup newer than the last of them.
void keep_newest_fulls(BackupRules& k, int count, const std::string& rule) {
  int found = 0;
  for (std::size_t i = k.all.size(); i-- > 0 && found < count;) {
    if (k.all[i].type != "full") continue;
    if (k.d[i].restorable) {
      ++found;
      k.keep(i, rule, "one of the newest " + plural(count, "restorable full backup"));
    } else {
      k.keep(i, rule, "newer than the " + std::to_string(count) + "th restorable full backup (its own WAL is incomplete)");
    }
  }
}

// Window rule: every backup that finished inside the window, and the newest restorable one before it.
void keep_window(BackupRules& k, std::int64_t start) {
  bool base_found = false;
  for (std::size_t i = k.all.size(); i-- > 0;) {
    if (k.outside_incremental_window(i)) continue;
    auto stop = parse_time(k.all[i].stop_time);
    if (!stop) {
      k.keep(i, "window", "stop time \"" + k.all[i].stop_time + "\" unreadable: counted as inside the window");
    } else if (*stop >= start) {
      k.keep(i, "window", "finished inside the window (after " + format_utc(start) + ")");
    } else if (!base_found) {
      k.keep(i, "window", "newest backup that finished before the window start " + format_utc(start) +
                              (k.d[i].restorable ? "" : " (its WAL is incomplete: looking further)"));
      base_found = k.d[i].restorable;
    }
  }
}

void keep_future(BackupRules& k, std::int64_t now) {
  for (std::size_t i = 0; i < k.all.size(); ++i) {
    auto stop = parse_time(k.all[i].stop_time);
    if (stop && *stop > now) k.keep(i, "future", "finished after now (" + format_utc(now) + "): the clock moved back?");
  }
}

// Full-backups rule: every incremental whose chain leads to a full backup that rule keeps.
void keep_incrementals_of_kept_fulls(BackupRules& k) {
  auto root_of = [&](std::size_t i) -> std::optional<std::size_t> {
    std::set<std::size_t> seen;
    while (k.all[i].type != "full") {
      if (!seen.insert(i).second) return std::nullopt;
      auto parent = k.index_of(k.all[i].parent);
      if (!parent) return std::nullopt;
      i = *parent;
    }
    return i;
  };
  for (std::size_t i = 0; i < k.all.size(); ++i) {
    if (k.all[i].type == "full" || k.outside_incremental_window(i)) continue;
    auto root = root_of(i);
    if (root && k.kept_by(*root, "full-backups")) {
      k.keep(i, "full-backups", "depends on kept full backup " + k.all[*root].label);
    }
  }
}

// Kept rule: every backup marked kept (repo/marks.h), and one whose marks cannot be read.
void keep_marked(BackupRules& k, const Inventory& inv) {
  for (std::size_t i = 0; i < k.all.size(); ++i) {
    auto it = inv.marks.find(k.all[i].label);
    if (it == inv.marks.end() || !it->second.keep) continue;
    k.keep(i, "kept", it->second.error.empty() ? "marked kept (retention-prune --release " + k.all[i].label + " ends it)"
                                               : "its marks cannot be read (" + it->second.error + "): kept");
  }
}

// Parents of every kept backup, up the chain.
void keep_parents(BackupRules& k) {
  for (std::size_t i = k.all.size(); i-- > 0;) {
    if (k.d[i].rules.empty()) continue;
    std::size_t child = i;
    std::set<std::size_t> seen{i};
    while (k.all[child].type != "full" && !k.all[child].parent.empty()) {
      auto parent = k.index_of(k.all[child].parent);
      if (!parent) {
        if (k.reason(child).find("parent") == std::string::npos) {
          k.reason(child) += " (its parent " + k.all[child].parent + " is missing)";
        }
        break;
      }
      if (!seen.insert(*parent).second) break;
      k.keep(*parent, "parent", "parent of kept backup " + k.all[child].label);
      child = *parent;
    }
  }
}

// Every backup no rule keeps is deleted, with the reasons the rules give.
void settle_backups(BackupRules& k, const RetentionPlan& plan) {
  for (std::size_t i = 0; i < k.all.size(); ++i) {
    auto& d = k.d[i];
    if (!d.rules.empty()) {
      d.action = RetentionAction::Keep;
      d.rule = d.rules.front();
      d.reason = k.reason(i);
      continue;
    }
    d.action = RetentionAction::Delete;
    d.rule = "expired";
    std::vector<std::string> why;
    if (plan.policy.full_backups > 0) {
      why.push_back("older than the newest " + plural(plan.policy.full_backups, "full backup"));
    }
    if (plan.window_start) why.push_back("finished before the window's base backup");
    if (k.outside_incremental_window(i)) {
      why.push_back("an incremental older than the incremental window (" + plan.policy.incremental_window_text + ")");
    } else if (d.type != "full") {
      why.push_back("its full backup is not kept");
    }
    for (std::size_t j = 0; j < why.size(); ++j) d.reason += (j ? "; " : "") + why[j];
  }
}

// The complete backups: every rule of the policy (retention.h), then the parents of what they keep.
void decide_backups(const Inventory& inv, RetentionPlan& plan) {
  plan.backups = initial_decisions(inv);
  std::optional<std::int64_t> incr_start;
  if (plan.policy.incremental_window) incr_start = plan.now - *plan.policy.incremental_window;
  BackupRules k(inv, plan.backups, incr_start);
  if (plan.policy.full_backups > 0) keep_newest_fulls(k, plan.policy.full_backups, "full-backups");
  if (plan.window_start) keep_window(k, *plan.window_start);
  keep_future(k, plan.now);
  keep_newest_fulls(k, plan.policy.min_full_backups, "min-full-backups");
  if (!inv.backups.empty()) k.keep(inv.backups.size() - 1, "newest", "the newest complete backup is never deleted");
  if (plan.policy.full_backups > 0) keep_incrementals_of_kept_fulls(k);
  keep_marked(k, inv);
  keep_parents(k);
  settle_backups(k, plan);
}

IncompleteDecision decide_incomplete(const IncompleteBackup& inc, const RetentionPolicy& policy, std::int64_t now,
                                     const RetentionExtras& extras) {
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
  return d;
}

// The WAL cutoff: the lowest start segment of any kept backup, unless an undatable backup older than
// the oldest kept one blocks WAL deletion.
void choose_wal_cutoff(const Inventory& inv, RetentionPlan& plan) {
  std::optional<std::size_t> oldest_kept;
  std::optional<std::uint64_t> cutoff;
  std::size_t cutoff_backup = 0;
  for (std::size_t k = 0; k < plan.backups.size(); ++k) {
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
    return;
  }
  const std::string& oldest_label = inv.backups[*oldest_kept].label;
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
    return;
  }
  const BackupManifest& b = inv.backups[cutoff_backup];
  plan.wal_cutoff_segno = cutoff;
  plan.wal_cutoff = segment_file_name(b.timeline, *cutoff, inv.wal_segment_size);
  plan.wal_rule = "before-oldest-kept-backup";
  plan.wal_reason = "WAL before " + plan.wal_cutoff + ", the start of the oldest kept backup " + b.label +
                    ", is deleted on every timeline";
}

// Runs of `objs` (one kind, one timeline, by position) with the same decision.
void add_wal_ranges(RetentionPlan& plan, std::uint32_t tli, const std::string& kind,
                    const std::vector<WalObject>& objs) {
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
}

// Every WAL file by timeline: its history file (always kept), segments, partials, backup history files.
void decide_wal(const Inventory& inv, RetentionPlan& plan) {
  choose_wal_cutoff(inv, plan);
  std::set<std::uint32_t> timelines;
  for (const auto& [tli, tl] : inv.wal) timelines.insert(tli);
  for (const auto& w : inv.backup_history_files) timelines.insert(w.timeline);
  for (const auto& [tli, h] : inv.histories) timelines.insert(tli);
  for (std::uint32_t tli : timelines) {
    if (inv.has_history(tli)) {
      WalRangeDecision r;
      r.timeline = tli;
      r.kind = "history";
      r.first = r.last = history_file_name(tli);
      r.files = 1;
      r.rule = "history";
      plan.wal.push_back(std::move(r));
    }
    if (auto it = inv.wal.find(tli); it != inv.wal.end()) {
      add_wal_ranges(plan, tli, "segment", it->second.segments);
      add_wal_ranges(plan, tli, "partial", it->second.partials);
    }
    std::vector<WalObject> bh;
    for (const auto& w : inv.backup_history_files) {
      if (w.timeline == tli) bh.push_back(w);
    }
    std::stable_sort(bh.begin(), bh.end(), [](const WalObject& a, const WalObject& b) { return a.segno < b.segno; });
    add_wal_ranges(plan, tli, "backup-history", bh);
  }
}

TemporaryDecision decide_temporary(const ObjectInfo& t, const RetentionPolicy& policy, std::int64_t now) {
  TemporaryDecision d;
  d.path = t.key;
  d.size = t.size;
  d.mtime = t.mtime;
  bool old = t.mtime > 0 && now - t.mtime >= policy.incomplete_grace;
  d.action = old ? RetentionAction::Delete : RetentionAction::Keep;
  d.rule = old ? "expired-temporary" : "grace";
  return d;
}

}  // namespace

RetentionPlan plan_retention(const Inventory& inv, const RetentionPolicy& policy, std::int64_t now,
                             const RetentionExtras& extras) {
  RetentionPlan plan;
  plan.now = now;
  plan.policy = policy;
  if (policy.window) plan.window_start = now - *policy.window;
  decide_backups(inv, plan);
  for (const auto& inc : inv.incomplete) plan.incomplete.push_back(decide_incomplete(inc, policy, now, extras));
  decide_wal(inv, plan);
  for (const auto& t : extras.temporaries) plan.temporaries.push_back(decide_temporary(t, policy, now));
  return plan;
}

}  // namespace pgvault
