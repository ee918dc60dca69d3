// backup-copy's summary (copy.h): text for people, one JSON object for scripts.
#include <nlohmann/json.hpp>

#include <map>

#include "common/backup/copy.h"
#include "common/base/errors.h"
#include "common/base/format.h"

namespace pgvault {

namespace {

// Objects written per backup (WAL counts for the backup that first needed it).
std::map<std::string, std::uint64_t> objects_per_backup(const CopyPlan& plan) {
  std::map<std::string, std::uint64_t> n;
  for (const auto& s : plan.steps) {
    if (!s.at_destination) ++n[s.label];
  }
  return n;
}

}  // namespace

std::string copy_summary_text(const CopyResult& r) {
  std::string out;
  auto per = objects_per_backup(r.plan);
  for (const auto& l : r.plan.labels) {
    out += "copied backup " + l + " (" + std::to_string(per[l]) + " objects with its WAL)\n";
  }
  for (const auto& l : r.plan.present) out += "backup " + l + " is already in " + r.to + "\n";
  for (const auto& c : r.plan.conflicts) out += "backup " + c.label + " was not copied: " + c.reason + "\n";
  if (r.plan.labels.empty()) out += "nothing to copy from " + r.from + " to " + r.to + "\n";
  else {
    out += "from " + r.from + " to " + r.to + ": " + std::to_string(r.plan.labels.size()) + " backups, " +
           std::to_string(r.objects) + " objects, " + human_bytes(static_cast<double>(r.bytes)) + " in " +
           human_duration(r.seconds) + " (" + std::to_string(r.wal_present) + " WAL files were there already)\n";
  }
  return out;
}

std::string copy_summary_json(const CopyResult& r) {
  nlohmann::json j;
  j["from"] = r.from;
  j["to"] = r.to;
  j["copied"] = r.plan.labels;
  j["already_present"] = r.plan.present;
  j["not_copied"] = nlohmann::json::array();
  for (const auto& c : r.plan.conflicts) j["not_copied"].push_back({{"label", c.label}, {"reason", c.reason}});
  j["objects"] = r.objects;
  j["bytes"] = r.bytes;
  j["wal_already_present"] = r.wal_present;
  j["seconds"] = r.seconds;
  return j.dump(2) + "\n";
}

void throw_if_not_copied(const CopyResult& r) {
  const auto& c = r.plan.conflicts;
  if (c.empty()) return;
  std::string more = c.size() > 1 ? " (and " + std::to_string(c.size() - 1) + " more, listed above)" : "";
  throw Error(ErrorKind::Conflict, std::to_string(c.size()) + " backup" + (c.size() > 1 ? "s" : "") + " not copied to " +
                                       r.to + ": " + c[0].label + ": " + c[0].reason + more);
}

}  // namespace pgvault
