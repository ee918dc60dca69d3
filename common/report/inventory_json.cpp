// The inventory as one JSON object (archive-info --json); the keys are documented in inventory_report.h.
#include <nlohmann/json.hpp>

#include "common/base/format.h"
#include "common/repo/chain.h"
#include "common/report/figures.h"
#include "common/report/inventory_report.h"

namespace pgvault {

namespace {

using nlohmann::json;

json identity_json(const Inventory& inv) {
  if (!inv.identity) return nullptr;
  return {{"system_identifier", std::to_string(inv.identity->system_identifier)},
          {"pg_version", inv.identity->pg_version},
          {"wal_segment_size", inv.identity->wal_segment_size}};
}

// The marks of a backup (repo/marks.h); none: not kept, no annotations.
const BackupMarks& marks_of(const Inventory& inv, const std::string& label) {
  static const BackupMarks none;
  auto it = inv.marks.find(label);
  return it == inv.marks.end() ? none : it->second;
}

json backup_json(const Inventory& inv, const BackupManifest& b) {
  json ts = json::array();
  for (const auto& t : b.tablespaces) ts.push_back({{"oid", t.oid}, {"location", t.location}});
  BackupChain c = resolve_chain(inv, b);
  json chain = json::array();
  for (auto it = c.members.rbegin(); it != c.members.rend(); ++it) chain.push_back((*it)->label);
  return {{"label", b.label},
          {"type", b.type},
          {"parent", b.parent},
          {"incremental_mode", b.incremental_mode},
          {"chain", chain},
          {"chain_complete", c.complete()},
          {"chain_problem", c.problem},
          {"timeline", b.timeline},
          {"start_time", b.start_time},
          {"stop_time", b.stop_time},
          {"duration_seconds", report::duration_seconds(b)},
          {"start_lsn", format_lsn(b.start_lsn)},
          {"stop_lsn", format_lsn(b.stop_lsn)},
          {"start_wal", b.start_wal},
          {"stop_wal", b.stop_wal},
          {"size_bytes", b.total_bytes},
          {"stored_bytes", b.stored_bytes},
          {"files", b.file_count()},
          {"pg_version", b.pg_version},
          {"tablespaces", ts},
          {"kept", marks_of(inv, b.label).keep},
          {"annotations", marks_of(inv, b.label).annotations}};
}

json incomplete_json(const IncompleteBackup& i) {
  return {{"label", i.label},
          {"objects", i.objects},
          {"stored_bytes", i.stored_bytes},
          {"newest_mtime", format_utc(i.newest_mtime)},
          {"error", i.error}};
}

json timeline_json(std::uint32_t tli, const WalTimeline& tl, std::uint32_t seg_size) {
  json gaps = json::array();
  for (const auto& g : timeline_gaps(tl)) {
    gaps.push_back({{"first", segment_file_name(tli, g.first, seg_size)},
                    {"last", segment_file_name(tli, g.last, seg_size)},
                    {"segments", g.last - g.first + 1}});
  }
  return {{"timeline", tli},
          {"first", tl.segments.empty() ? "" : tl.segments.front().name},
          {"last", tl.segments.empty() ? "" : tl.segments.back().name},
          {"segments", tl.segments.size()},
          {"stored_bytes", report::stored_bytes(tl)},
          {"partials", tl.partials.size()},
          {"gaps", gaps}};
}

json history_json(std::uint32_t tli, const TimelineHistory& h) {
  json parents = json::array();
  for (const auto& e : h.entries) {
    parents.push_back({{"timeline", e.parent}, {"switchpoint", format_lsn(e.switchpoint)}, {"reason", e.reason}});
  }
  return {{"timeline", tli}, {"key", h.key}, {"parents", parents}, {"error", h.error}};
}

json window_json(const RecoveryWindow& w) {
  json win = {{"available", w.available}};
  if (w.available) {
    win["earliest"] = {{"time", w.earliest_time}, {"lsn", format_lsn(w.earliest_lsn)}, {"backup", w.earliest_backup}};
    win["latest"] = {{"timeline", w.latest_timeline},
                     {"lsn", format_lsn(w.latest_lsn)},
                     {"segment", w.latest_segment},
                     {"archived_at", format_utc(w.latest_mtime)}};
  } else {
    win["earliest"] = nullptr;
    win["latest"] = nullptr;
  }
  return win;
}

json verify_json(const VerifyReport* verify) {
  if (!verify) return nullptr;
  json probs = json::array();
  for (const auto& p : verify->problems) probs.push_back({{"key", p.key}, {"kind", p.kind}, {"message", p.message}});
  return {{"objects", verify->objects}, {"bytes", verify->bytes}, {"problems", probs}};
}

json pg_time_json(const std::optional<PgTimestamp>& t) { return t ? json(format_pg_timestamp(*t)) : json(nullptr); }

json targets_json(const RecoveryTargets* t) {
  if (!t) return nullptr;
  json timelines = json::array(), points = json::array(), invalid = json::array();
  for (const auto& tl : t->timelines) {
    timelines.push_back({{"timeline", tl.timeline},
                         {"segments", tl.segments},
                         {"indexed", tl.indexed},
                         {"first_commit", pg_time_json(tl.first_commit)},
                         {"last_commit", pg_time_json(tl.last_commit)}});
    for (const auto& rp : tl.restore_points) {
      points.push_back({{"name", rp.name}, {"lsn", format_lsn(rp.lsn)}, {"time", format_pg_timestamp(rp.time)},
                        {"timeline", tl.timeline}});
    }
  }
  for (const auto& [segment, why] : t->invalid) invalid.push_back({{"segment", segment}, {"message", why}});
  return {{"timelines", timelines}, {"restore_points", points}, {"invalid", invalid}};
}

}  // namespace

std::string inventory_json(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify, const RecoveryTargets* targets) {
  json j;
  j["repository"] = repository;
  j["identity"] = identity_json(inv);
  j["backups"] = json::array();
  for (const auto& b : inv.backups) j["backups"].push_back(backup_json(inv, b));
  j["incomplete_backups"] = json::array();
  for (const auto& i : inv.incomplete) j["incomplete_backups"].push_back(incomplete_json(i));
  j["wal"] = json::array();
  for (const auto& [tli, tl] : inv.wal) j["wal"].push_back(timeline_json(tli, tl, inv.wal_segment_size));
  j["history"] = json::array();
  for (const auto& [tli, h] : inv.histories) j["history"].push_back(history_json(tli, h));
  j["recovery_window"] = window_json(w);
  j["targets"] = targets_json(targets);
  j["verify"] = verify_json(verify);
  return j.dump(2) + "\n";
}

}  // namespace pgvault
