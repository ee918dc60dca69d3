#include "common/report/fleet_report.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/base/time.h"
#include "common/report/inventory_report.h"

namespace pgvault {

namespace {

using nlohmann::json;

FleetExtras extras_of(const std::vector<FleetExtras>& extras, std::size_t i) {
  return i < extras.size() ? extras[i] : FleetExtras{};
}

// Newest segment time over the repositories read (0 when none is known).
std::int64_t newest_time(const std::vector<RepositoryView>& views) {
  std::int64_t t = 0;
  for (const auto& v : views) {
    if (v.error.empty()) t = std::max(t, v.newest_mtime);
  }
  return t;
}

json lag_json(const RepositoryView& v, std::int64_t newest) {
  json seconds = nullptr;
  if (v.newest_mtime > 0 && newest > 0) seconds = newest - v.newest_mtime;
  return {{"newest_segment", v.newest_segment}, {"segments_behind", v.lag_segments}, {"seconds_behind", seconds}};
}

json owed_json(const RepositoryView& v) {
  json since = nullptr;
  if (v.owed.oldest_since) since = format_utc(*v.owed.oldest_since);
  return {{"segments", v.owed.segments}, {"oldest_since", since}, {"error", v.owed_error}};
}

json view_json(const RepositoryView& v, FleetExtras x, std::int64_t newest) {
  if (!v.error.empty()) {
    return {{"name", v.name}, {"repository", v.where}, {"error", v.error}, {"error_kind", std::string(kind_name(v.error_kind))}};
  }
  json j = json::parse(inventory_json(v.where, v.inv, v.window, x.verify, x.targets));
  j["name"] = v.name;
  j["owed"] = owed_json(v);
  j["lag"] = lag_json(v, newest);
  return j;
}

// The lines after one repository's inventory: what it is owed and how far it lags.
std::string status_text(const RepositoryView& v, std::int64_t newest, bool several) {
  std::string out = "Owed: " + std::to_string(v.owed.segments) + " WAL files";
  if (v.owed.oldest_since) out += ", the oldest since " + format_utc(*v.owed.oldest_since);
  if (!v.owed_error.empty()) out += " (" + v.owed_error + ")";
  out += "\n";
  if (!several) return out;
  out += "Lag: newest segment " + (v.newest_segment.empty() ? std::string("(none)") : v.newest_segment) + ", " +
         std::to_string(v.lag_segments) + " segments behind the most advanced repository";
  if (v.newest_mtime > 0 && newest > 0) out += " (" + std::to_string(newest - v.newest_mtime) + " s)";
  return out + "\n";
}

}  // namespace

std::string fleet_text(const std::vector<RepositoryView>& views, const std::vector<FleetExtras>& extras) {
  const bool several = views.size() > 1;
  const std::int64_t newest = newest_time(views);
  std::string out;
  for (std::size_t i = 0; i < views.size(); ++i) {
    const RepositoryView& v = views[i];
    if (several) out += (i ? "\n" : "") + std::string("=== repository ") + v.name + " ===\n";
    if (!v.error.empty()) {
      out += "ERROR: " + v.error + "\n";
      continue;
    }
    FleetExtras x = extras_of(extras, i);
    out += inventory_text(v.where, v.inv, v.window, x.verify, x.targets);
    out += status_text(v, newest, several);
  }
  return out;
}

std::string fleet_json(const std::vector<RepositoryView>& views, const std::vector<FleetExtras>& extras) {
  const std::int64_t newest = newest_time(views);
  if (views.size() == 1) return view_json(views[0], extras_of(extras, 0), newest).dump(2) + "\n";
  json all = json::array();
  for (std::size_t i = 0; i < views.size(); ++i) all.push_back(view_json(views[i], extras_of(extras, i), newest));
  return json({{"repositories", all}}).dump(2) + "\n";
}

}  // namespace pgvault
