// What a restore reports: the summary line and the JSON summary.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "common/restore/restore_steps.h"

namespace pgvault {

using namespace restore_detail;

namespace {

std::string mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

// "<first segment>..<last segment>" recovery reads, each named on its timeline; "" without WAL.
std::string wal_range(const RestoreResult& r, std::uint32_t seg_size) {
  const WalCheck& w = r.plan.wal;
  if (w.chain.empty()) return "";
  auto step_tli = [&](std::uint64_t s) {
    std::uint32_t tli = w.chain.front().timeline;
    for (const auto& c : w.chain) {
      if (c.begin_segno <= s) tli = c.timeline;
    }
    return tli;
  };
  return segment_file_name(step_tli(w.first_segno), w.first_segno, seg_size) + ".." +
         segment_file_name(step_tli(w.last_segno), w.last_segno, seg_size);
}

// " (resolved: ...)" or " (not resolved in advance: ...)" for a time, xid or name target; "" otherwise.
std::string resolution_text(const RestorePlan& plan) {
  if (!plan.resolved) return "";
  return plan.resolved->resolved ? " (resolved: " + plan.resolved->how + ")" : " (" + plan.resolved->how + ")";
}

}  // namespace

std::string restore_summary_line(const RestoreResult& r, const RestoreOptions& opts) {
  const auto& b = r.plan.backup;
  std::ostringstream o;
  o << (opts.dry_run ? "would restore" : "restored") << " backup " << b.label;
  if (!r.plan.chain.empty()) {
    o << " (incremental, on " << r.plan.chain.size() << (r.plan.chain.size() == 1 ? " older backup" : " older backups")
      << " from " << r.plan.chain.front().label << ")";
  }
  o << " (" << r.files << " files, "
    << mib(r.bytes) << ") into " << opts.pgdata;
  if (!opts.dry_run) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " in %.1f s", r.seconds);
    o << buf;
  }
  o << "; target " << describe_target(opts.target) << resolution_text(r.plan) << " on timeline " << r.plan.target_timeline << ", action "
    << opts.target_action << (opts.standby ? ", standby" : "") << "; WAL " << wal_range(r, b.wal_segment_size) << " ("
    << r.plan.wal.segments << (r.plan.wal.segments == 1 ? " segment" : " segments") << ") verified present; "
    << (opts.archive_mode == "off" ? "archive_mode off (the restored server archives nothing; --archive-mode preserve "
                                     "keeps the server's setting)"
                                   : "archive_mode preserved (the restored server archives as the backed-up one did)");
  return o.str();
}

std::string restore_summary_json(const RestoreResult& r, const RestoreOptions& opts) {
  using nlohmann::json;
  const auto& b = r.plan.backup;
  json target = {{"type", target_kind_name(opts.target.kind)}};
  if (!opts.target.value.empty()) target["value"] = opts.target.value;
  if (const auto& res = r.plan.resolved) {
    target["resolution"] = {{"resolved", res->resolved},
                            {"segment", res->segment},
                            {"lsn", res->lsn ? json(format_lsn(*res->lsn)) : json(nullptr)},
                            {"how", res->how}};
  }
  json ts = json::array();
  for (const auto& [oid, loc] : r.plan.tablespaces) ts.push_back({{"oid", oid}, {"location", loc}});
  std::string range = wal_range(r, b.wal_segment_size);
  auto dots = range.find("..");
  json chain = json::array();  // the backups the files come from, the full backup first
  for (const auto& m : r.plan.chain) chain.push_back(m.label);
  chain.push_back(b.label);
  json j = {
      {"dry_run", opts.dry_run},
      {"backup", b.label},
      {"why", r.plan.why},
      {"backup_timeline", b.timeline},
      {"chain", chain},
      {"pgdata", opts.pgdata},
      {"target", target},
      {"target_timeline", r.plan.target_timeline},
      {"target_action", opts.target_action},
      {"inclusive", !opts.exclusive},
      {"standby", opts.standby},
      {"archive_mode", opts.archive_mode},
      {"files", r.files},
      {"bytes", r.bytes},
      {"seconds", r.seconds},
      {"wal", {{"first", dots == std::string::npos ? "" : range.substr(0, dots)},
               {"last", dots == std::string::npos ? "" : range.substr(dots + 2)},
               {"segments", r.plan.wal.segments}}},
      {"tablespaces", ts},
      {"settings", r.settings},
      {"next_command", restore_next_command(opts)},
  };
  return j.dump() + "\n";
}

}  // namespace pgvault
