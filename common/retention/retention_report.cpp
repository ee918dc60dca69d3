// retention: the plan as text and JSON, and the one-line summary (see retention.h).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

#include "common/base/format.h"
#include "common/base/text.h"
#include "common/retention/plural.h"
#include "common/retention/retention.h"

namespace pgvault {

namespace {

using nlohmann::json;

json policy_json(const RetentionPlan& p) {
  return {{"full_backups", p.policy.full_backups},
          {"window", p.policy.window ? json(p.policy.window_text) : json(nullptr)},
          {"window_start", p.window_start ? json(format_utc(*p.window_start)) : json(nullptr)},
          {"min_full_backups", p.policy.min_full_backups},
          {"incremental_window", p.policy.incremental_window ? json(p.policy.incremental_window_text) : json(nullptr)},
          {"incomplete_grace", p.policy.incomplete_grace_text}};
}

}  // namespace

std::string retention_plan_text(const std::string& repository, const RetentionPlan& p) {
  std::ostringstream o;
  o << "repository " << repository << ", now " << format_utc(p.now) << "\n";
  o << "policy: full_backups " << p.policy.full_backups << ", window "
    << (p.policy.window ? p.policy.window_text + " (from " + format_utc(*p.window_start) + ")" : "off")
    << ", min_full_backups " << p.policy.min_full_backups << ", incremental_window "
    << (p.policy.incremental_window ? p.policy.incremental_window_text : "off") << ", incomplete_grace " << p.policy.incomplete_grace_text
    << "\n";
  for (const auto& b : p.backups) {
    o << ascii_upper(action_name(b.action)) << "  backup " << b.label << " " << b.type << " timeline " << b.timeline
      << " start " << b.start_wal << " stopped " << b.stop_time << " " << human_bytes(b.stored_bytes)
      << (b.restorable ? "" : " [WAL incomplete]") << ": " << b.rule;
    for (std::size_t i = 1; i < b.rules.size(); ++i) o << "," << b.rules[i];
    o << " (" << b.reason << ")\n";
  }
  for (const auto& i : p.incomplete) {
    o << ascii_upper(action_name(i.action)) << "  incomplete backup " << i.label << " (" << plural(i.objects, "object")
      << ", " << human_bytes(i.stored_bytes) << "): " << i.rule << " (" << i.reason << ")\n";
  }
  for (const auto& w : p.wal) {
    o << ascii_upper(action_name(w.action)) << "  " << w.kind << " timeline " << w.timeline << " " << w.first;
    if (w.last != w.first) o << ".." << w.last;
    o << " (" << plural(w.files, "file") << ", " << human_bytes(w.stored_bytes) << "): " << w.rule << "\n";
  }
  for (const auto& t : p.temporaries) {
    o << ascii_upper(action_name(t.action)) << "  temporary file " << t.path << " (" << human_bytes(t.size) << ", "
      << format_utc(t.mtime) << "): " << t.rule << "\n";
  }
  o << "wal: " << p.wal_rule << ": " << p.wal_reason << "\n";
  o << "plan: delete " << plural(p.backups_to_delete(), "backup") << ", "
    << plural(p.incomplete_to_delete(), "incomplete backup") << ", " << plural(p.wal_files_to_delete(), "WAL file")
    << " (" << human_bytes(p.bytes_to_delete()) << "); keep " << plural(p.backups.size() - p.backups_to_delete(), "backup")
    << "\n";
  return o.str();
}

std::string retention_plan_json(const std::string& repository, const RetentionPlan& p, bool dry_run,
                                const RetentionResult* result) {
  json j;
  j["repository"] = repository;
  j["now"] = format_utc(p.now);
  j["dry_run"] = dry_run;
  j["policy"] = policy_json(p);
  j["backups"] = json::array();
  for (const auto& b : p.backups) {
    j["backups"].push_back({{"label", b.label},
                            {"type", b.type},
                            {"parent", b.parent.empty() ? json(nullptr) : json(b.parent)},
                            {"timeline", b.timeline},
                            {"start_wal", b.start_wal},
                            {"stop_time", b.stop_time},
                            {"stored_bytes", b.stored_bytes},
                            {"restorable", b.restorable},
                            {"action", action_name(b.action)},
                            {"rule", b.rule},
                            {"rules", b.rules},
                            {"reason", b.reason}});
  }
  j["incomplete"] = json::array();
  for (const auto& i : p.incomplete) {
    j["incomplete"].push_back({{"label", i.label},
                               {"objects", i.objects},
                               {"stored_bytes", i.stored_bytes},
                               {"newest_mtime", i.newest_mtime ? json(format_utc(i.newest_mtime)) : json(nullptr)},
                               {"error", i.error.empty() ? json(nullptr) : json(i.error)},
                               {"action", action_name(i.action)},
                               {"rule", i.rule},
                               {"reason", i.reason}});
  }
  json ranges = json::array();
  for (const auto& w : p.wal) {
    ranges.push_back({{"timeline", w.timeline},
                      {"kind", w.kind},
                      {"first", w.first},
                      {"last", w.last},
                      {"files", w.files},
                      {"stored_bytes", w.stored_bytes},
                      {"action", action_name(w.action)},
                      {"rule", w.rule}});
  }
  j["wal"] = {{"cutoff", p.wal_cutoff.empty() ? json(nullptr) : json(p.wal_cutoff)},
              {"rule", p.wal_rule},
              {"reason", p.wal_reason},
              {"ranges", ranges}};
  j["temporaries"] = json::array();
  for (const auto& t : p.temporaries) {
    j["temporaries"].push_back({{"path", t.path},
                                {"size", t.size},
                                {"mtime", format_utc(t.mtime)},
                                {"action", action_name(t.action)},
                                {"rule", t.rule}});
  }
  j["plan"] = {{"backups_delete", p.backups_to_delete()},
               {"backups_keep", p.backups.size() - p.backups_to_delete()},
               {"incomplete_delete", p.incomplete_to_delete()},
               {"wal_files_delete", p.wal_files_to_delete()},
               {"bytes_delete", p.bytes_to_delete()}};
  if (result) {
    j["result"] = {{"backups_deleted", result->backups_deleted},
                   {"incomplete_deleted", result->incomplete_deleted},
                   {"wal_files_deleted", result->wal_files_deleted},
                   {"temporaries_deleted", result->temporaries_deleted},
                   {"bytes_freed", result->bytes_freed}};
  } else {
    j["result"] = nullptr;
  }
  return j.dump(2) + "\n";
}

std::string retention_summary_line(const RetentionPlan& p, const RetentionResult& r) {
  std::string line = "retention-prune: deleted " + plural(r.backups_deleted, "backup");
  if (r.incomplete_deleted) line += " and " + plural(r.incomplete_deleted, "incomplete backup");
  line += ", " + plural(r.wal_files_deleted, "WAL file");
  if (r.temporaries_deleted) line += ", " + plural(r.temporaries_deleted, "temporary file");
  line += "; freed " + human_bytes(r.bytes_freed) + "; kept " +
          plural(p.backups.size() - p.backups_to_delete(), "backup");
  if (!p.wal_cutoff.empty()) line += ", WAL from " + p.wal_cutoff;
  else line += ", all WAL (" + p.wal_rule + ")";
  return line + "\n";
}

}  // namespace pgvault
