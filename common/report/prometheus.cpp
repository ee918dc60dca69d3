#include "common/report/prometheus.h"

#include <cstdio>
#include <map>

#include "common/base/fs.h"
#include "common/base/io.h"
#include "common/base/text.h"
#include "common/base/time.h"
#include "common/report/figures.h"

namespace pgvault {

namespace {

// Families in the order first declared, each with its samples, so every family is written in one block.
class Metrics {
 public:
  void declare(const std::string& name, const char* type, const char* help) {
    if (index_.count(name)) return;
    index_[name] = families_.size();
    families_.push_back({name, type, help, {}});
  }
  void sample(const std::string& name, const std::string& labels, double value) {
    families_.at(index_.at(name)).samples.push_back((labels.empty() ? name : name + "{" + labels + "}") + " " +
                                                    format_value(value));
  }
  std::string text() const {
    std::string out;
    for (const auto& f : families_) {
      if (f.samples.empty()) continue;
      out += "# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.type + "\n";
      for (const auto& s : f.samples) out += s + "\n";
    }
    return out;
  }

 private:
  static std::string format_value(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
  }
  struct Family {
    std::string name, type, help;
    std::vector<std::string> samples;
  };
  std::vector<Family> families_;
  std::map<std::string, std::size_t> index_;
};

void gauge(Metrics& m, const std::string& name, const char* help, const std::string& labels, double value) {
  m.declare(name, "gauge", help);
  m.sample(name, labels, value);
}

void backup_metrics(Metrics& m, const RepositoryView& v, const std::string& l, std::int64_t now) {
  std::map<std::string, int> by_type = {{"full", 0}, {"incremental", 0}};
  double stored = 0;
  for (const auto& b : v.inv.backups) {
    ++by_type[b.type];
    stored += static_cast<double>(b.stored_bytes);
  }
  for (const auto& [type, n] : by_type) {
    gauge(m, "pgvault_backups", "Complete backups in the repository.", l + ",type=\"" + prometheus_label_value(type) + "\"", n);
  }
  gauge(m, "pgvault_backups_incomplete", "Backup folders without a usable manifest.", l,
        static_cast<double>(v.inv.incomplete.size()));
  gauge(m, "pgvault_backups_stored_bytes", "Repository bytes of the complete backups.", l, stored);
  if (v.inv.backups.empty()) return;
  const BackupManifest& b = v.inv.backups.back();
  if (auto stop = parse_iso8601_prefix(b.stop_time)) {
    gauge(m, "pgvault_backup_newest_timestamp_seconds", "Stop time of the newest complete backup.", l,
          static_cast<double>(*stop));
    gauge(m, "pgvault_backup_newest_age_seconds", "Seconds since the newest complete backup stopped.", l,
          static_cast<double>(now - *stop));
  }
  gauge(m, "pgvault_backup_newest_size_bytes", "Database bytes of the newest complete backup.", l,
        static_cast<double>(b.total_bytes));
  gauge(m, "pgvault_backup_newest_stored_bytes", "Repository bytes of the newest complete backup.", l,
        static_cast<double>(b.stored_bytes));
  gauge(m, "pgvault_backup_newest_duration_seconds", "Duration of the newest complete backup.", l,
        static_cast<double>(report::duration_seconds(b)));
}

void wal_metrics(Metrics& m, const RepositoryView& v, const std::string& l) {
  double segments = 0, bytes = 0;
  for (const auto& [tli, tl] : v.inv.wal) {
    segments += static_cast<double>(tl.segments.size());
    bytes += static_cast<double>(report::stored_bytes(tl));
  }
  gauge(m, "pgvault_wal_segments", "Archived WAL segments.", l, segments);
  gauge(m, "pgvault_wal_stored_bytes", "Repository bytes of the archived WAL.", l, bytes);
  gauge(m, "pgvault_wal_gap_segments", "WAL segments missing inside the recovery window.", l,
        static_cast<double>(window_gap_segments(v.inv)));
  gauge(m, "pgvault_wal_lag_segments", "WAL segments behind the most advanced repository.", l,
        static_cast<double>(v.lag_segments));
  if (v.newest_mtime > 0) {
    gauge(m, "pgvault_wal_newest_timestamp_seconds", "Storage time of the newest archived WAL segment.", l,
          static_cast<double>(v.newest_mtime));
  }
  if (!v.window.available) return;
  if (auto start = parse_iso8601_prefix(v.window.earliest_time)) {
    gauge(m, "pgvault_recovery_window_start_timestamp_seconds", "Earliest time the repository can recover to.", l,
          static_cast<double>(*start));
  }
  if (v.window.latest_mtime > 0) {
    gauge(m, "pgvault_recovery_window_end_timestamp_seconds",
          "Storage time of the last contiguous WAL segment (latest recoverable point, approximately).", l,
          static_cast<double>(v.window.latest_mtime));
  }
}

void owed_metrics(Metrics& m, const RepositoryView& v, const std::string& l, std::int64_t now) {
  gauge(m, "pgvault_owed_segments", "WAL files owed to the repository (pushed later).", l,
        static_cast<double>(v.owed.segments));
  gauge(m, "pgvault_owed_oldest_age_seconds", "Age of the oldest owed WAL file (0 when none).", l,
        v.owed.oldest_since ? static_cast<double>(now - *v.owed.oldest_since) : 0.0);
}

void counter(Metrics& m, const std::string& name, const char* help, const std::string& labels, std::uint64_t value) {
  m.declare(name, "counter", help);
  m.sample(name, labels, static_cast<double>(value));
}

// Every error kind, so a first failure is an increase from 0 rather than a new series.
void failure_counters(Metrics& m, const std::string& name, const char* help, const std::string& l,
                      const WalCounters& c) {
  for (int k = 0; k <= static_cast<int>(ErrorKind::Internal); ++k) {
    std::string kind(kind_name(static_cast<ErrorKind>(k)));
    auto it = c.failures.find(kind);
    counter(m, name, help, l + ",kind=\"" + kind + "\"", it == c.failures.end() ? 0 : it->second);
  }
}

// What this machine recorded (repo/wal_state.h): the last --verify, the wal-push and wal-fetch calls.
void local_state_metrics(Metrics& m, const RepositoryView& v, const std::string& l, std::int64_t now) {
  if (const auto& r = v.last_verify) {
    gauge(m, "pgvault_verify_last_timestamp_seconds", "When the last archive-info --verify finished.", l,
          static_cast<double>(r->time));
    gauge(m, "pgvault_verify_age_seconds", "Seconds since the last archive-info --verify finished.", l,
          static_cast<double>(now - r->time));
    gauge(m, "pgvault_verify_last_ok", "1 when the last archive-info --verify found no problem.", l, r->ok ? 1 : 0);
    gauge(m, "pgvault_verify_last_problems", "Problems the last archive-info --verify found.", l,
          static_cast<double>(r->problems));
  }
  if (const auto& c = v.push_counters) {
    counter(m, "pgvault_wal_archived_total", "WAL files wal-push archived (on this machine).", l, c->files);
    counter(m, "pgvault_wal_archived_bytes_total", "Bytes of the WAL files wal-push archived.", l, c->bytes);
    failure_counters(m, "pgvault_wal_push_failures_total", "Failed wal-push calls, by error kind.", l, *c);
  }
  if (const auto& c = v.fetch_counters) {
    counter(m, "pgvault_wal_fetched_total", "WAL files wal-fetch restored (on this machine).", l, c->files);
    counter(m, "pgvault_wal_fetched_bytes_total", "Bytes of the WAL files wal-fetch restored.", l, c->bytes);
    counter(m, "pgvault_wal_fetch_missing_total", "wal-fetch calls for a file not in the archive.", l, c->missing);
    failure_counters(m, "pgvault_wal_fetch_failures_total", "Failed wal-fetch calls, by error kind.", l, *c);
  }
}

void server_metrics(Metrics& m, const ServerStatus& s) {
  gauge(m, "pgvault_server_up", "1 when the server's archiver statistics could be read.", "", s.connected ? 1 : 0);
  if (!s.connected) return;
  m.declare("pgvault_archiver_archived_total", "counter", "WAL files archived (pg_stat_archiver).");
  m.sample("pgvault_archiver_archived_total", "", static_cast<double>(s.archived_count));
  m.declare("pgvault_archiver_failed_total", "counter", "Failed archive attempts (pg_stat_archiver).");
  m.sample("pgvault_archiver_failed_total", "", static_cast<double>(s.failed_count));
  if (s.last_archived_time) {
    gauge(m, "pgvault_archiver_last_archived_timestamp_seconds", "Time of the last archived WAL file.", "",
          static_cast<double>(*s.last_archived_time));
  }
  if (s.last_failed_time) {
    gauge(m, "pgvault_archiver_last_failed_timestamp_seconds", "Time of the last failed archive attempt.", "",
          static_cast<double>(*s.last_failed_time));
  }
  if (s.ready_count) {
    gauge(m, "pgvault_archiver_ready_files", "WAL files waiting for archive_command.", "",
          static_cast<double>(*s.ready_count));
  }
}

}  // namespace

std::string prometheus_text(const std::vector<RepositoryView>& views, const std::optional<ServerStatus>& server,
                            std::int64_t now) {
  Metrics m;
  for (const auto& v : views) {
    std::string l = "repository=\"" + prometheus_label_value(v.name) + "\"";
    gauge(m, "pgvault_repository_up", "1 when the repository could be read.", l, v.error.empty() ? 1 : 0);
    local_state_metrics(m, v, l, now);
    if (!v.error.empty()) continue;
    backup_metrics(m, v, l, now);
    wal_metrics(m, v, l);
    owed_metrics(m, v, l, now);
  }
  if (server) server_metrics(m, *server);
  gauge(m, "pgvault_scrape_timestamp_seconds", "When archive-info wrote these metrics.", "", static_cast<double>(now));
  return m.text();
}

void write_metrics_file(const std::string& text, const std::string& path) {
  if (path == "-") {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
      throw Error(ErrorKind::Io, "cannot write the metrics to stdout");
    }
    return;
  }
  AtomicFileWriter w(path, false, true, 0644);
  w.write(as_bytes(text));
  w.commit();
}

}  // namespace pgvault
