// The drill's report: text, JSON and Prometheus gauges (drill.h).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/base/format.h"
#include "common/base/text.h"
#include "common/base/time.h"
#include "common/drill/drill.h"

namespace pgvault {

namespace {

std::string fixed(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

void gauge(std::string& out, const std::string& name, const std::string& help, const std::string& value) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + value + "\n";
}

}  // namespace

std::string drill_text(const DrillReport& r) {
  std::string out = r.passed() ? "drill PASSED" : "drill FAILED (" + failure_name(r.failure) + "): " + r.reason;
  out += "\nbackup: " + (r.backup.empty() ? std::string("(none restored)") : r.backup);
  if (r.pg_version) out += " (PostgreSQL " + std::to_string(r.pg_version) + ")";
  out += "\nsizes: database " + human_bytes(static_cast<double>(r.backup_bytes)) + ", stored " +
         human_bytes(static_cast<double>(r.stored_bytes)) + ", restored " +
         human_bytes(static_cast<double>(r.restored_bytes));
  out += "\nRTO: " + fixed(r.rto_seconds()) + " s (restore " + fixed(r.restore_seconds) + " s + recovery " +
         fixed(r.recovery_seconds) + " s)";
  out += "\nRPO: " + (r.rpo_seconds ? fixed(*r.rpo_seconds) + " s (newest archived WAL " + r.newest_wal + ")"
                                    : std::string("unknown (no archived WAL with an object time)"));
  for (const auto& c : r.checks) out += "\n" + std::string(c.ok ? "ok    " : "FAIL  ") + c.name + ": " + c.detail;
  return out + "\n";
}

std::string drill_json(const DrillReport& r) {
  nlohmann::json checks = nlohmann::json::array();
  nlohmann::json counts = nlohmann::json::object();
  for (const auto& c : r.checks) {
    checks.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    if (c.ok && c.name.rfind("count ", 0) == 0) counts[c.name.substr(6)] = std::stoull(c.detail);
  }
  nlohmann::json j = {
      {"passed", r.passed()},         {"failure", failure_name(r.failure)},
      {"reason", r.reason},           {"backup", r.backup},
      {"pg_version", r.pg_version},   {"restore_seconds", r.restore_seconds},
      {"recovery_seconds", r.recovery_seconds}, {"rto_seconds", r.rto_seconds()},
      {"rpo_seconds", r.rpo_seconds ? nlohmann::json(*r.rpo_seconds) : nlohmann::json(nullptr)},
      {"newest_wal", r.newest_wal},   {"backup_bytes", r.backup_bytes},
      {"stored_bytes", r.stored_bytes}, {"restored_bytes", r.restored_bytes},
      {"checks", checks},             {"counts", counts},
      {"work_dir", r.work_dir},       {"finished_at", format_utc(r.finished_at)}};
  return j.dump(2) + "\n";
}

std::string drill_prometheus(const DrillReport& r) {
  std::string out;
  gauge(out, "pgvault_drill_success", "1 when the last restore drill passed, else 0", r.passed() ? "1" : "0");
  gauge(out, "pgvault_drill_timestamp_seconds", "when the last restore drill finished (unix time)",
        std::to_string(r.finished_at));
  gauge(out, "pgvault_drill_restore_seconds", "seconds the drill's restore took", fixed(r.restore_seconds));
  gauge(out, "pgvault_drill_recovery_seconds", "seconds from server start to the end of recovery",
        fixed(r.recovery_seconds));
  gauge(out, "pgvault_drill_rto_seconds", "measured recovery time: restore plus recovery seconds",
        fixed(r.rto_seconds()));
  if (r.rpo_seconds) {
    gauge(out, "pgvault_drill_rpo_seconds", "seconds since the newest archived WAL segment", fixed(*r.rpo_seconds));
  }
  gauge(out, "pgvault_drill_restored_bytes", "bytes the drill restored", std::to_string(r.restored_bytes));
  bool header = false;
  for (const auto& c : r.checks) {
    if (!c.ok || c.name.rfind("count ", 0) != 0) continue;
    if (!header) out += "# HELP pgvault_drill_table_rows rows counted in a table\n# TYPE pgvault_drill_table_rows gauge\n";
    header = true;
    out += "pgvault_drill_table_rows{table=\"" + prometheus_label_value(c.name.substr(6)) + "\"} " + c.detail + "\n";
  }
  return out;
}

}  // namespace pgvault
