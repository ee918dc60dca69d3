#include "common/report/check.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/base/errors.h"
#include "common/base/format.h"
#include "common/base/text.h"
#include "common/base/time.h"

namespace pgvault {

namespace {

// Warning / critical when `value` reaches a threshold (0 = off).
template <typename T>
Severity graded(T value, T warning, T critical) {
  if (critical > 0 && value >= critical) return Severity::Critical;
  if (warning > 0 && value >= warning) return Severity::Warning;
  return Severity::Ok;
}

std::int64_t seconds_of(const std::string& text, const std::string& key) {
  return text.empty() ? 0 : parse_duration(text, "[check] " + key);
}

std::string age_text(std::int64_t seconds) { return human_duration(static_cast<double>(std::max<std::int64_t>(0, seconds))); }

// "(warning 25h, critical 49h)" for an age rule.
std::string limits(std::int64_t warning, std::int64_t critical) {
  return "(warning " + (warning > 0 ? age_text(warning) : "off") + ", critical " +
         (critical > 0 ? age_text(critical) : "off") + ")";
}

void add(std::vector<Finding>& out, Severity s, const std::string& repo, const char* rule, std::string message) {
  if (s != Severity::Ok) out.push_back({s, repo, rule, std::move(message)});
}

void check_backup_age(const RepositoryFacts& f, const CheckThresholds& t, std::int64_t now, std::vector<Finding>& out) {
  if (!f.newest_backup) {
    add(out, Severity::Critical, f.name, "backup_age", "no complete backup");
    return;
  }
  std::int64_t age = now - *f.newest_backup;
  add(out, graded(age, t.backup_age_warning, t.backup_age_critical), f.name, "backup_age",
      "newest backup " + f.newest_backup_label + " finished " + age_text(age) + " ago " +
          limits(t.backup_age_warning, t.backup_age_critical));
}

void check_repository_wal(const RepositoryFacts& f, const CheckThresholds& t, std::int64_t now,
                          std::vector<Finding>& out) {
  if (!f.has_wal) {
    add(out, Severity::Critical, f.name, "wal_age", "no WAL archived");
    return;
  }
  if (!f.newest_wal_time || *f.newest_wal_time <= 0) return;  // the backend keeps no time
  std::int64_t age = now - *f.newest_wal_time;
  add(out, graded(age, t.wal_age_warning, t.wal_age_critical), f.name, "wal_age",
      "newest archived WAL is " + age_text(age) + " old " + limits(t.wal_age_warning, t.wal_age_critical));
}

void check_counts(const RepositoryFacts& f, const CheckThresholds& t, std::vector<Finding>& out) {
  if (f.gap_segments > 0) {
    add(out, Severity::Critical, f.name, "gaps",
        std::to_string(f.gap_segments) + " WAL segments missing in the recovery window");
  }
  if (!f.owed_error.empty()) add(out, Severity::Warning, f.name, "owed", f.owed_error);
  add(out, graded(f.owed_segments, t.owed_warning, t.owed_critical), f.name, "owed",
      std::to_string(f.owed_segments) + " WAL files owed" +
          (f.owed_since ? " since " + format_utc(*f.owed_since) : std::string()) + " (warning " +
          std::to_string(t.owed_warning) + ", critical " + std::to_string(t.owed_critical) + ")");
  if (f.verify_problems && *f.verify_problems > 0) {
    add(out, Severity::Critical, f.name, "verify", std::to_string(*f.verify_problems) + " problems found by --verify");
  }
  add(out, graded(f.lag_segments, t.lag_warning, t.lag_critical), f.name, "lag",
      std::to_string(f.lag_segments) + " segments behind the most advanced repository (warning " +
          std::to_string(t.lag_warning) + ", critical " + std::to_string(t.lag_critical) + ")");
}

void check_verify_age(const RepositoryFacts& f, const CheckThresholds& t, std::int64_t now, std::vector<Finding>& out) {
  const bool wanted = t.verify_age_warning > 0 || t.verify_age_critical > 0;
  if (!f.last_verify_time) {
    if (wanted) {
      add(out, Severity::Warning, f.name, "verify_age",
          "never verified (archive-info --verify) " + limits(t.verify_age_warning, t.verify_age_critical));
    }
    return;
  }
  std::int64_t age = now - *f.last_verify_time;
  if (f.last_verify_problems > 0) {
    add(out, Severity::Critical, f.name, "verify_age",
        "the last verify (" + format_utc(*f.last_verify_time) + ") failed: " + std::to_string(f.last_verify_problems) +
            " problems");
    return;
  }
  add(out, graded(age, t.verify_age_warning, t.verify_age_critical), f.name, "verify_age",
      "last verified " + age_text(age) + " ago " + limits(t.verify_age_warning, t.verify_age_critical));
}

// The archiver as the server reports it. Returns false when the server could not be read.
bool check_server(const ServerStatus& s, const CheckThresholds& t, std::int64_t now, std::vector<Finding>& out) {
  if (!s.connected) {
    add(out, Severity::Warning, "", "server", s.error);
    return false;
  }
  if (s.last_failed_time && (!s.last_archived_time || *s.last_failed_time >= *s.last_archived_time)) {
    add(out, Severity::Critical, "", "archiving",
        "archive_command failing: " + s.last_failed_wal + " failed at " + format_utc(*s.last_failed_time) + " (" +
            std::to_string(s.failed_count) + " failures since the statistics reset)");
  }
  if (!s.ready_count) {
    add(out, Severity::Warning, "", "server", "cannot read the .ready backlog: " + s.ready_error);
    return true;
  }
  if (*s.ready_count == 0) return true;  // nothing waiting: old WAL is fine
  std::int64_t since = s.oldest_ready_time.value_or(s.last_archived_time.value_or(now));
  std::int64_t age = now - since;
  add(out, graded(age, t.wal_age_warning, t.wal_age_critical), "", "wal_age",
      std::to_string(*s.ready_count) + " WAL files waiting to be archived, the oldest for " + age_text(age) + " " +
          limits(t.wal_age_warning, t.wal_age_critical));
  return true;
}

int rank(Severity s) {
  switch (s) {
    case Severity::Critical: return 3;
    case Severity::Unknown: return 2;
    case Severity::Warning: return 1;
    case Severity::Ok: return 0;
  }
  return 0;
}

}  // namespace

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::Ok: return "OK";
    case Severity::Warning: return "WARNING";
    case Severity::Critical: return "CRITICAL";
    case Severity::Unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

CheckThresholds check_thresholds(const Config& config) {
  const Config::Check& c = config.check;
  CheckThresholds t;
  t.backup_age_warning = seconds_of(c.backup_age_warning, "backup_age_warning");
  t.backup_age_critical = seconds_of(c.backup_age_critical, "backup_age_critical");
  t.wal_age_warning = seconds_of(c.wal_age_warning, "wal_age_warning");
  t.wal_age_critical = seconds_of(c.wal_age_critical, "wal_age_critical");
  t.owed_warning = static_cast<std::uint64_t>(c.owed_warning);
  t.owed_critical = static_cast<std::uint64_t>(c.owed_critical);
  t.lag_warning = static_cast<std::uint64_t>(c.lag_warning);
  t.lag_critical = static_cast<std::uint64_t>(c.lag_critical);
  t.verify_age_warning = seconds_of(c.verify_age_warning, "verify_age_warning");
  t.verify_age_critical = seconds_of(c.verify_age_critical, "verify_age_critical");
  return t;
}

RepositoryFacts repository_facts(const RepositoryView& v) {
  RepositoryFacts f;
  f.name = v.name;
  f.error = v.error;
  if (!v.error.empty()) return f;
  if (!v.inv.backups.empty()) {
    const BackupManifest& b = v.inv.backups.back();
    f.newest_backup_label = b.label;
    f.newest_backup = parse_iso8601_prefix(b.stop_time);
  }
  f.has_wal = !v.newest_segment.empty();
  if (f.has_wal) f.newest_wal_time = v.newest_mtime;
  f.gap_segments = window_gap_segments(v.inv);
  f.owed_segments = v.owed.segments;
  f.owed_since = v.owed.oldest_since;
  f.owed_error = v.owed_error;
  f.lag_segments = v.lag_segments;
  if (v.last_verify) {
    f.last_verify_time = v.last_verify->time;
    f.last_verify_problems = v.last_verify->ok ? 0 : std::max<std::uint64_t>(1, v.last_verify->problems);
  }
  return f;
}

CheckResult run_check(const std::vector<RepositoryFacts>& repos, const std::optional<ServerStatus>& server,
                      const CheckThresholds& t, std::int64_t now) {
  CheckResult r;
  bool server_read = server && check_server(*server, t, now, r.findings);
  for (const auto& f : repos) {
    if (!f.error.empty()) {
      add(r.findings, Severity::Unknown, f.name, "unreadable", f.error);
      continue;
    }
    check_backup_age(f, t, now, r.findings);
    if (!server_read) check_repository_wal(f, t, now, r.findings);
    check_counts(f, t, r.findings);
    check_verify_age(f, t, now, r.findings);
  }
  std::stable_sort(r.findings.begin(), r.findings.end(),
                   [](const Finding& a, const Finding& b) { return rank(a.severity) > rank(b.severity); });
  if (!r.findings.empty()) r.status = r.findings.front().severity;
  return r;
}

namespace {

std::string finding_line(const Finding& f) {
  return std::string(severity_name(f.severity)) + " " + (f.repository.empty() ? "server" : f.repository) + ": " +
         f.message;
}

std::string summary_line(const CheckResult& r, std::size_t repositories) {
  std::string s = std::string("PGVAULT ") + severity_name(r.status) + " - ";
  if (r.findings.empty()) return s + std::to_string(repositories) + " repositories healthy";
  std::size_t counts[4] = {0, 0, 0, 0};
  for (const auto& f : r.findings) ++counts[static_cast<int>(f.severity)];
  std::string parts;
  const Severity order[] = {Severity::Critical, Severity::Unknown, Severity::Warning};
  for (Severity sev : order) {
    std::size_t n = counts[static_cast<int>(sev)];
    if (n == 0) continue;
    parts += (parts.empty() ? "" : ", ") + std::to_string(n) + " " + ascii_lower(severity_name(sev));
  }
  return s + parts + ": " + finding_line(r.findings.front());
}

}  // namespace

std::string check_text(const CheckResult& r, std::size_t repositories) {
  std::string out = summary_line(r, repositories) + "\n";
  for (const auto& f : r.findings) out += finding_line(f) + "\n";
  return out;
}

std::string check_json(const CheckResult& r, std::size_t repositories) {
  nlohmann::json j;
  j["status"] = ascii_lower(severity_name(r.status));
  j["code"] = static_cast<int>(r.status);
  j["summary"] = summary_line(r, repositories);
  j["findings"] = nlohmann::json::array();
  for (const auto& f : r.findings) {
    j["findings"].push_back({{"severity", ascii_lower(severity_name(f.severity))}, {"repository", f.repository}, {"rule", f.rule}, {"message", f.message}});
  }
  return j.dump(2) + "\n";
}

}  // namespace pgvault
