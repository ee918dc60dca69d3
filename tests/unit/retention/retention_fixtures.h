// Shared by the retention unit tests: WAL names, synthetic backups and inventories, policies, and
// lookups in a plan.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/retention/retention.h"

namespace pgvault::retention_fixtures {

constexpr std::uint32_t kSeg = 16u << 20;
constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kT0 = 1'800'000'000;  // 2027-01-15

inline std::string seg_name(std::uint32_t tli, std::uint64_t segno) { return segment_file_name(tli, segno, kSeg); }
inline std::string seg_key(std::uint32_t tli, std::uint64_t segno) { return keys::wal(*WalFileName::parse(seg_name(tli, segno))); }
inline std::uint64_t lsn_of(std::uint64_t segno, std::uint64_t off = 0) { return segno * kSeg + off; }

// A backup on `tli` from segment `start` to `stop`, finished at `stop_time` (unix seconds); started one
// minute earlier (the label says when).
inline BackupManifest backup(std::int64_t stop_time, std::uint32_t tli, std::uint64_t start, std::uint64_t stop,
                      const std::string& parent = "") {
  BackupManifest m;
  m.label = make_backup_label(stop_time - 60, !parent.empty());
  m.type = parent.empty() ? "full" : "incremental";
  m.parent = parent;
  m.timeline = tli;
  m.start_lsn = lsn_of(start, 0x28);
  m.stop_lsn = lsn_of(stop, 0x100);
  m.start_wal = seg_name(tli, start);
  m.stop_wal = seg_name(tli, stop);
  m.start_time = format_utc(stop_time - 60);
  m.stop_time = format_utc(stop_time);
  m.stored_bytes = 1000;
  return m;
}

// A synthetic inventory.
struct Inv {
  std::vector<ObjectInfo> objects;
  std::map<std::uint32_t, std::vector<HistoryEntry>> histories;
  std::vector<BackupManifest> backups;
  std::vector<IncompleteBackup> incomplete;

  Inv& segs(std::uint32_t tli, std::uint64_t first, std::uint64_t last, std::set<std::uint64_t> holes = {}) {
    for (std::uint64_t s = first; s <= last; ++s) {
      if (!holes.count(s)) objects.push_back({seg_key(tli, s), 100, 0});
    }
    return *this;
  }
  Inv& partial(std::uint32_t tli, std::uint64_t s) {
    objects.push_back({seg_key(tli, s) + ".partial", 100, 0});
    return *this;
  }
  Inv& history(std::uint32_t tli, std::vector<HistoryEntry> e) {
    objects.push_back({"wal/" + history_file_name(tli), 10, 0});
    histories[tli] = std::move(e);
    return *this;
  }
  Inv& add(const BackupManifest& m) {
    backups.push_back(m);
    return *this;
  }
  Inv& inc(const std::string& label, std::int64_t mtime, const std::string& error = "") {
    incomplete.push_back({label, 3, 300, mtime, error});
    return *this;
  }
  Inventory build() const {
    Inventory inv;
    add_wal_listing(inv, objects);
    for (auto& [tli, e] : histories) inv.histories[tli].entries = e;
    inv.backups = backups;
    std::sort(inv.backups.begin(), inv.backups.end(),
              [](const BackupManifest& a, const BackupManifest& b) { return a.label < b.label; });
    inv.incomplete = incomplete;
    return inv;
  }
};

inline RetentionPolicy policy(int full, std::optional<std::int64_t> window = std::nullopt, int min_full = 1) {
  RetentionPolicy p;
  p.full_backups = full;
  p.window = window;
  if (window) p.window_text = std::to_string(*window / kDay) + "d";
  p.min_full_backups = min_full;
  return p;
}

inline std::vector<std::string> labels(const RetentionPlan& p, RetentionAction a) {
  std::vector<std::string> out;
  for (const auto& b : p.backups) {
    if (b.action == a) out.push_back(b.label);
  }
  return out;
}

// Every deleted WAL file name, and every kept one.
inline std::set<std::string> wal_files(const RetentionPlan& p, RetentionAction a) {
  std::set<std::string> out;
  for (const auto& r : p.wal) {
    if (r.action != a) continue;
    if (r.kind == "history") {
      out.insert(r.first);
      continue;
    }
    if (a == RetentionAction::Delete) {
      for (const auto& k : r.keys) out.insert(k.substr(k.rfind('/') + 1));
    }
  }
  return out;
}

inline const BackupDecision& decision(const RetentionPlan& p, const std::string& label) {
  for (const auto& b : p.backups) {
    if (b.label == label) return b;
  }
  throw std::runtime_error("no decision for " + label);
}

inline bool has_rule(const BackupDecision& d, const std::string& rule) {
  return std::find(d.rules.begin(), d.rules.end(), rule) != d.rules.end();
}


// Backups used by several cases: three full backups a day apart, WAL 1..15 on timeline 1.
inline BackupManifest F(int day, std::uint64_t start, std::uint32_t tli = 1) {
  return backup(kT0 + day * kDay, tli, start, start + 1);
}

}  // namespace pgvault::retention_fixtures
