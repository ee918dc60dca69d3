// The WAL index object (wal_index.h): JSON, checks, and its reading and writing. Format: docs/FORMAT.md.
#include "common/repo/wal_index.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "common/base/errors.h"
#include "common/repo/layout.h"
#include "common/repo/repo_json.h"

namespace pgvault {

using nlohmann::json;

namespace {

std::uint64_t lsn_field(const json& j, const char* field, const std::string& what) {
  try {
    return parse_lsn(j.at(field).get<std::string>(), what + " " + field);
  } catch (const Error& e) {
    throw Error(ErrorKind::Corruption, what + ": malformed WAL index (" + field + ": " + e.what() + ")");
  }
}

Error malformed(const std::string& what, const std::string& why) {
  return Error(ErrorKind::Corruption, what + ": malformed WAL index (" + why + ")");
}

// The checks that need nothing but the index itself: ordered runs and LSNs, times that agree.
void check_index(const WalIndex& x, const std::string& what) {
  auto name = WalFileName::parse(x.segment);
  if (!name || name->kind != WalFileKind::Segment) throw malformed(what, "segment \"" + x.segment + "\"");
  if (x.min_time.has_value() != x.max_time.has_value() || (x.min_time && *x.min_time > *x.max_time)) {
    throw malformed(what, "min_time and max_time disagree");
  }
  if (x.min_time.has_value() != !x.xid_runs.empty()) throw malformed(what, "xid_runs and times disagree");
  for (std::size_t i = 0; i < x.xid_runs.size(); ++i) {
    const auto& [first, last] = x.xid_runs[i];
    if (first > last || (i > 0 && first <= x.xid_runs[i - 1].second)) throw malformed(what, "xid_runs out of order");
  }
  std::uint64_t after = x.start_lsn;
  for (const WalEvent& rp : x.restore_points) {
    if (rp.kind != WalEventKind::RestorePoint || rp.lsn < after || rp.end_lsn <= rp.lsn ||
        rp.name.size() >= 64) {
      throw malformed(what, "restore point at " + format_lsn(rp.lsn));
    }
    after = rp.end_lsn;
  }
  if (x.open_record_lsn && *x.open_record_lsn < after) throw malformed(what, "open_record_lsn before the records");
  if (!x.open_record_lsn && x.open_record_may_be_event) throw malformed(what, "open_record_may_be_event without a record");
}

}  // namespace

bool WalIndex::has_xid(std::uint32_t xid) const {
  auto it = std::upper_bound(xid_runs.begin(), xid_runs.end(), xid,
                             [](std::uint32_t v, const auto& run) { return v < run.first; });
  return it != xid_runs.begin() && xid <= std::prev(it)->second;
}

std::string WalIndex::to_json() const {
  json j;
  j["format"] = format;
  j["segment"] = segment;
  j["start_lsn"] = format_lsn(start_lsn);
  j["records"] = records;
  if (min_time) j["min_time"] = *min_time;
  if (max_time) j["max_time"] = *max_time;
  j["xid_runs"] = json::array();
  for (const auto& [first, last] : xid_runs) j["xid_runs"].push_back({first, last});
  j["restore_points"] = json::array();
  for (const WalEvent& rp : restore_points) {
    j["restore_points"].push_back(
        {{"name", rp.name}, {"lsn", format_lsn(rp.lsn)}, {"end_lsn", format_lsn(rp.end_lsn)}, {"time", rp.time}});
  }
  if (open_record_lsn) j["open_record_lsn"] = format_lsn(*open_record_lsn);
  j["open_record_may_be_event"] = open_record_may_be_event;
  return j.dump(1) + "\n";
}

WalIndex WalIndex::from_json(const std::string& text, const std::string& what) {
  using repo_json::integer_field;
  WalIndex x;
  const std::string bad = what + ": malformed WAL index";
  try {
    json j = json::parse(text);
    x.format = integer_field<int>(j, "format", bad);
    if (x.format != kWalIndexFormat) throw malformed(what, "unknown format " + std::to_string(x.format));
    x.segment = j.at("segment").get<std::string>();
    x.start_lsn = lsn_field(j, "start_lsn", what);
    x.records = integer_field<std::uint64_t>(j, "records", bad);
    if (j.contains("min_time")) x.min_time = integer_field<PgTimestamp>(j, "min_time", bad);
    if (j.contains("max_time")) x.max_time = integer_field<PgTimestamp>(j, "max_time", bad);
    for (const auto& run : j.at("xid_runs")) {
      if (!run.is_array() || run.size() != 2) throw malformed(what, "an xid run is not [first, last]");
      auto xid = [&](std::size_t i) {
        if (auto n = repo_json::integer_in_range<std::uint32_t>(run.at(i))) return *n;
        throw malformed(what, "an xid run's xid " + repo_json::not_an_integer_of<std::uint32_t>());
      };
      x.xid_runs.emplace_back(xid(0), xid(1));
    }
    for (const auto& r : j.at("restore_points")) {
      WalEvent rp;
      rp.kind = WalEventKind::RestorePoint;
      rp.name = r.at("name").get<std::string>();
      rp.lsn = lsn_field(r, "lsn", what);
      rp.end_lsn = lsn_field(r, "end_lsn", what);
      rp.time = integer_field<PgTimestamp>(r, "time", bad, "restore point " + rp.name);
      x.restore_points.push_back(std::move(rp));
    }
    if (j.contains("open_record_lsn")) x.open_record_lsn = lsn_field(j, "open_record_lsn", what);
    x.open_record_may_be_event = j.at("open_record_may_be_event").get<bool>();
  } catch (const json::exception& e) {
    throw malformed(what, e.what());
  }
  check_index(x, what);
  return x;
}

WalIndex make_wal_index(const WalFileName& name, const WalSegmentSummary& summary) {
  WalIndex x;
  x.segment = name.segment_part();
  x.start_lsn = summary.start_lsn;
  x.records = summary.records;
  std::set<std::uint32_t> xids;
  for (const WalEvent& e : summary.events) {
    if (e.kind == WalEventKind::RestorePoint) {
      x.restore_points.push_back(e);
      continue;
    }
    xids.insert(e.xid);
    x.min_time = x.min_time ? std::min(*x.min_time, e.time) : e.time;
    x.max_time = x.max_time ? std::max(*x.max_time, e.time) : e.time;
  }
  for (std::uint32_t xid : xids) {
    if (!x.xid_runs.empty() && x.xid_runs.back().second + 1 == xid) x.xid_runs.back().second = xid;
    else x.xid_runs.emplace_back(xid, xid);
  }
  x.open_record_lsn = summary.open_record_lsn;
  x.open_record_may_be_event = summary.open_record_lsn && summary.open_record_may_be_event;
  return x;
}

void write_wal_index(Repository& repo, const WalFileName& name, const WalIndex& index) {
  const std::string text = index.to_json();
  repo.put_bytes(keys::wal_index(name), as_bytes(text), PutOptions{.if_absent = false, .size = text.size()});
}

std::optional<WalIndex> read_wal_index(Repository& repo, const WalFileName& name) {
  const std::optional<Identity> identity = repo.identity();
  if (!identity) {
    throw Error(ErrorKind::Corruption, repo.describe() + "/" + keys::wal_index(name) +
                                           ": a WAL index in a repository without an identity");
  }
  return read_wal_index(repo, name, identity->wal_segment_size);
}

std::optional<WalIndex> read_wal_index(Repository& repo, const WalFileName& name, std::uint32_t seg_size) {
  const std::string key = keys::wal_index(name);
  const std::string what = repo.describe() + "/" + key;
  Bytes data;
  try {
    data = repo.get_bytes(key);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound) return std::nullopt;
    throw;
  }
  WalIndex x = WalIndex::from_json(std::string(data.begin(), data.end()), what);
  const std::uint64_t start = segment_number(name.log, name.seg, seg_size) * seg_size;
  if (x.segment != name.segment_part() || x.start_lsn != start) {
    throw malformed(what, "it describes segment " + x.segment + " at " + format_lsn(x.start_lsn));
  }
  const std::uint64_t end = start + seg_size;
  bool outside = x.open_record_lsn && *x.open_record_lsn >= end;
  for (const WalEvent& rp : x.restore_points) outside = outside || rp.lsn >= end;
  if (outside) throw malformed(what, "an LSN outside the segment");
  return x;
}

}  // namespace pgvault
