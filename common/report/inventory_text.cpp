// The inventory as text for operators: one section after another, tables with aligned columns.
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/base/format.h"
#include "common/repo/chain.h"
#include "common/report/figures.h"
#include "common/report/inventory_report.h"

namespace pgvault {

namespace {

using Rows = std::vector<std::vector<std::string>>;

std::string duration_text(std::int64_t s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

// An aligned table: columns padded to their widest cell.
std::string table(const Rows& rows) {
  std::vector<std::size_t> w;
  for (const auto& r : rows) {
    if (w.size() < r.size()) w.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += "  " + line + "\n";
  }
  return out;
}

void identity_line(std::ostream& o, const std::string& repository, const Inventory& inv) {
  o << "repository " << repository;
  if (inv.identity) {
    o << ": database system " << inv.identity->system_identifier << ", PostgreSQL " << inv.identity->pg_version
      << ", WAL segments of " << human_bytes(inv.wal_segment_size);
  } else {
    o << ": empty (nothing archived yet)";
  }
  o << "\n";
}

// The chain each incremental backup is restored from, full backup first; a broken one says why.
void chains_section(std::ostream& o, const Inventory& inv) {
  Rows rows;
  for (const auto& b : inv.backups) {
    if (b.type == "full") continue;
    BackupChain c = resolve_chain(inv, b);
    rows.push_back({b.label, c.complete() ? c.text() : "BROKEN: " + c.problem});
  }
  if (rows.empty()) return;
  o << "\nincremental chains (full backup first)\n" << table(rows);
}

// Kept backups and annotations (repo/marks.h), one row per marked backup.
void marks_section(std::ostream& o, const Inventory& inv) {
  if (inv.marks.empty()) return;
  Rows rows = {{"label", "kept", "annotations"}};
  for (const auto& [label, m] : inv.marks) {
    std::string notes;
    for (const auto& [k, v] : m.annotations) notes += (notes.empty() ? "" : ", ") + k + "=" + v;
    if (!m.error.empty()) notes = "UNREADABLE (kept): " + m.error;
    rows.push_back({label, m.keep ? "kept" : "-", notes.empty() ? "-" : notes});
  }
  o << "\nkept and annotated backups (retention-prune --keep/--release/--annotate LABEL)\n" << table(rows);
}

void backups_section(std::ostream& o, const Inventory& inv) {
  o << "\nbackups (" << inv.backups.size() << ")\n";
  if (inv.backups.empty()) return;
  Rows rows = {{"label", "type", "parent", "tli", "start time", "stop time", "duration", "start lsn", "stop lsn", "size",
                "stored"}};
  for (const auto& b : inv.backups) {
    rows.push_back({b.label, b.type, b.parent.empty() ? "-" : b.parent, std::to_string(b.timeline), b.start_time,
                    b.stop_time, duration_text(report::duration_seconds(b)), format_lsn(b.start_lsn),
                    format_lsn(b.stop_lsn), human_bytes(b.total_bytes), human_bytes(b.stored_bytes)});
  }
  o << table(rows);
  chains_section(o, inv);
  marks_section(o, inv);
}

void incomplete_section(std::ostream& o, const Inventory& inv) {
  if (inv.incomplete.empty()) return;
  o << "\nincomplete backups (" << inv.incomplete.size() << ", invisible to pitr-prepare)\n";
  Rows rows = {{"label", "objects", "stored", "last write", "reason"}};
  for (const auto& i : inv.incomplete) {
    rows.push_back({i.label, std::to_string(i.objects), human_bytes(i.stored_bytes), format_utc(i.newest_mtime),
                    i.error.empty() ? "no manifest (unfinished or interrupted)" : i.error});
  }
  o << table(rows);
}

// "A..B, C": the missing segments of a timeline as ranges of file names.
std::string gaps_text(std::uint32_t tli, const WalTimeline& tl, std::uint32_t seg_size) {
  std::string gaps;
  for (const auto& g : timeline_gaps(tl)) {
    if (!gaps.empty()) gaps += ", ";
    gaps += segment_file_name(tli, g.first, seg_size);
    if (g.last != g.first) gaps += ".." + segment_file_name(tli, g.last, seg_size);
  }
  return gaps.empty() ? "none" : gaps;
}

void wal_section(std::ostream& o, const Inventory& inv) {
  o << "\nWAL by timeline\n";
  if (inv.wal.empty()) {
    o << "  (none)\n";
    return;
  }
  Rows rows = {{"tli", "first", "last", "segments", "stored", "gaps"}};
  for (const auto& [tli, tl] : inv.wal) {
    std::string segments = std::to_string(tl.segments.size()) +
                           (tl.partials.empty() ? "" : " + " + std::to_string(tl.partials.size()) + " partial");
    rows.push_back({std::to_string(tli), tl.segments.empty() ? "-" : tl.segments.front().name,
                    tl.segments.empty() ? "-" : tl.segments.back().name, segments,
                    human_bytes(report::stored_bytes(tl)), gaps_text(tli, tl, inv.wal_segment_size)});
  }
  o << table(rows);
}

void history_section(std::ostream& o, const Inventory& inv) {
  if (inv.histories.empty()) return;
  o << "\ntimeline history\n";
  Rows rows = {{"tli", "parent", "switchpoint", "reason"}};
  for (const auto& [tli, h] : inv.histories) {
    if (!h.error.empty()) {
      rows.push_back({std::to_string(tli), "?", "?", "unreadable: " + h.error});
    } else if (!h.entries.empty()) {
      const auto& e = h.entries.back();
      rows.push_back({std::to_string(tli), std::to_string(e.parent), format_lsn(e.switchpoint), e.reason});
    }
  }
  o << table(rows);
}

void window_section(std::ostream& o, const RecoveryWindow& w) {
  o << "\nrecovery window\n";
  if (!w.available) {
    o << "  none: no complete backup whose WAL reaches its end\n";
    return;
  }
  o << "  earliest  " << w.earliest_time << "  " << format_lsn(w.earliest_lsn) << "  (end of backup "
    << w.earliest_backup << ")\n";
  o << "  latest    " << (w.latest_mtime ? format_utc(w.latest_mtime) : std::string("?")) << "  "
    << format_lsn(w.latest_lsn) << "  (end of " << w.latest_segment << ", timeline " << w.latest_timeline
    << "; the time is when it was archived)\n";
}

void verify_section(std::ostream& o, const VerifyReport& verify) {
  o << "\nverify: " << verify.objects << " objects, " << human_bytes(verify.bytes) << " checked, "
    << verify.problems.size() << " problem" << (verify.problems.size() == 1 ? "" : "s") << "\n";
  for (const auto& p : verify.problems) o << "  PROBLEM " << p.kind << " " << p.key << ": " << p.message << "\n";
}

std::string pg_time_text(const std::optional<PgTimestamp>& t) { return t ? format_pg_timestamp(*t) : "-"; }

// archive-info --targets: the commit-time range per timeline and the named restore points.
void targets_section(std::ostream& o, const RecoveryTargets& t) {
  std::uint64_t segments = 0, indexed = 0;
  for (const auto& tl : t.timelines) segments += tl.segments, indexed += tl.indexed;
  o << "\nrecovery targets (from the WAL index of " << indexed << " of " << segments << " segments";
  o << (indexed < segments ? "; segments archived without one, by an older pgvault, say nothing)\n" : ")\n");
  Rows rows = {{"tli", "first commit", "last commit", "restore points", "indexed"}};
  for (const auto& tl : t.timelines) {
    rows.push_back({std::to_string(tl.timeline), pg_time_text(tl.first_commit), pg_time_text(tl.last_commit),
                    std::to_string(tl.restore_points.size()), std::to_string(tl.indexed) + "/" + std::to_string(tl.segments)});
  }
  o << table(rows);
  Rows points = {{"restore point", "lsn", "time", "tli"}};
  for (const auto& tl : t.timelines) {
    for (const auto& rp : tl.restore_points) {
      points.push_back({rp.name, format_lsn(rp.lsn), format_pg_timestamp(rp.time), std::to_string(tl.timeline)});
    }
  }
  if (points.size() > 1) o << table(points);
  for (const auto& [segment, why] : t.invalid) o << "  INVALID index of " << segment << ": " << why << "\n";
}

}  // namespace

std::string inventory_text(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify, const RecoveryTargets* targets) {
  std::ostringstream o;
  identity_line(o, repository, inv);
  backups_section(o, inv);
  incomplete_section(o, inv);
  wal_section(o, inv);
  history_section(o, inv);
  window_section(o, w);
  if (targets) targets_section(o, *targets);
  if (verify) verify_section(o, *verify);
  return o.str();
}

}  // namespace pgvault
