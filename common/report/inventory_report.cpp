#include "common/report/inventory_report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "common/base/errors.h"
#include "common/base/format.h"
#include "common/base/threads.h"
#include "common/crypto/crypto.h"

namespace pgvault {

namespace {



std::int64_t duration_seconds(const BackupManifest& b) {
  try {
    return parse_iso8601(b.stop_time) - parse_iso8601(b.start_time);
  } catch (const Error&) {
    return 0;
  }
}

std::string duration_text(std::int64_t s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

// An aligned table: columns padded to their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows) {
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

std::uint64_t stored_bytes(const WalTimeline& tl) {
  std::uint64_t n = 0;
  for (const auto& s : tl.segments) n += s.stored_size;
  for (const auto& s : tl.partials) n += s.stored_size;
  return n;
}

// ---- verification sinks ----

class CountingSink final : public Sink {
 public:
  void write(ByteView d) override {
    if (header.size() < kWalLongHeaderSize) {
      std::size_t n = std::min(kWalLongHeaderSize - header.size(), d.size());
      header.insert(header.end(), d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
    }
    size += d.size();
  }
  void finish() override {}
  std::uint64_t size = 0;
  Bytes header;
};

// Splits a bundle's plaintext by the manifest's offsets and checks each file's checksum (CRC-32C, or
// SHA-256 in format 1 manifests) (reads only).
class FileCheckSink final : public Sink {
 public:
  FileCheckSink(std::vector<const ManifestFile*> files, std::vector<std::string>& problems)
      : files_(std::move(files)), problems_(problems) {}
  void write(ByteView d) override {
    size_ += d.size();
    while (!d.empty()) {
      settle_empty();
      if (idx_ >= files_.size()) {
        pos_ += d.size();
        return;  // extra bytes: caught by the size check
      }
      const ManifestFile& f = *files_[idx_];
      if (pos_ < f.offset) {
        std::uint64_t n = std::min<std::uint64_t>(f.offset - pos_, d.size());
        pos_ += n;
        d = d.subspan(n);
        continue;
      }
      if (!hash_) hash_ = std::make_unique<FileChecksum>(f);
      std::uint64_t n = std::min<std::uint64_t>(f.offset + f.size - pos_, d.size());
      hash_->update(d.first(n));
      pos_ += n;
      d = d.subspan(n);
      if (pos_ == f.offset + f.size) close();
    }
  }
  void finish() override {
    settle_empty();
    if (idx_ < files_.size()) {
      problems_.push_back("ends after " + std::to_string(pos_) + " bytes, inside file " + files_[idx_]->path);
    }
  }
  std::uint64_t size() const { return size_; }

 private:
  std::vector<const ManifestFile*> files_;
  std::vector<std::string>& problems_;
  std::size_t idx_ = 0;
  std::uint64_t pos_ = 0, size_ = 0;
  std::unique_ptr<FileChecksum> hash_;
  void settle_empty() {
    while (idx_ < files_.size() && files_[idx_]->size == 0 && pos_ >= files_[idx_]->offset) close();
  }
  void close() {
    if (!hash_) hash_ = std::make_unique<FileChecksum>(*files_[idx_]);
    std::string mismatch = hash_->mismatch();
    if (!mismatch.empty()) problems_.push_back("file " + files_[idx_]->path + ": " + mismatch);
    hash_.reset();
    ++idx_;
  }
};

struct Task {
  enum Type { Bundle, Wal, History } type;
  std::string key;
  const BackupManifest* backup = nullptr;
  std::uint64_t bundle = 0;
  const WalObject* wal = nullptr;
  bool segment = false;  // a full segment (not .partial/.backup)
};

}  // namespace

VerifyReport verify_repository(Repository& repo, const Inventory& inv, const VerifyOptions& opts) {
  VerifyReport rep;
  std::mutex mu;
  auto problem = [&](const std::string& key, const std::string& kind, const std::string& msg) {
    std::lock_guard g(mu);
    rep.problems.push_back({key, kind, msg});
  };

  // Static problems the inventory already knows.
  for (const auto& inc : inv.incomplete) {
    if (inc.error.empty()) continue;
    problem(keys::backup_manifest(inc.label), inc.error_kind == ErrorKind::Corruption ? "corruption" : "unreadable",
            inc.error);
  }
  for (const auto& [tli, h] : inv.histories) {
    if (!h.error.empty()) problem(h.key, "corruption", h.error);
  }
  rep.objects += inv.backups.size();  // manifests: decoded and verified by load_inventory

  // Tasks: every bundle, WAL object and history file.
  std::vector<Task> tasks;
  std::map<std::string, std::map<std::uint64_t, std::vector<const ManifestFile*>>> files;  // label -> bundle -> files
  for (const auto& b : inv.backups) {
    auto& per = files[b.label];
    for (const auto& f : b.files) per[f.bundle].push_back(&f);
    for (const auto& mb : b.bundles) per[mb.index];
    for (auto& [idx, v] : per) {
      std::stable_sort(v.begin(), v.end(), [](const ManifestFile* x, const ManifestFile* y) { return x->offset < y->offset; });
      tasks.push_back({Task::Bundle, keys::backup_bundle(b.label, idx), &b, idx, nullptr, false});
    }
    // Stored sizes, and bundles the manifest names that do not exist.
    std::map<std::string, std::uint64_t> sizes;
    for (const auto& o : repo.storage().list(keys::backup_prefix(b.label))) sizes[o.key] = o.size;
    for (const auto& mb : b.bundles) {
      std::string key = keys::backup_bundle(b.label, mb.index);
      auto it = sizes.find(key);
      if (it != sizes.end() && mb.stored_size && it->second != mb.stored_size) {
        problem(key, "mismatch", "backup " + b.label + ": stored size " + std::to_string(it->second) +
                                     ", manifest says " + std::to_string(mb.stored_size));
      }
    }
  }
  for (const auto& [tli, tl] : inv.wal) {
    for (const auto& s : tl.segments) tasks.push_back({Task::Wal, s.key, nullptr, 0, &s, true});
    for (const auto& s : tl.partials) tasks.push_back({Task::Wal, s.key, nullptr, 0, &s, false});
  }
  for (const auto& s : inv.backup_history_files) tasks.push_back({Task::Wal, s.key, nullptr, 0, &s, false});
  for (const auto& [tli, h] : inv.histories) tasks.push_back({Task::History, h.key, nullptr, 0, nullptr, false});

  const std::uint64_t sysid = inv.identity ? inv.identity->system_identifier : 0;
  repo.read_key();  // load the key once before threads share the repository
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> done{0}, bytes{0};
  std::optional<Error> fatal;
  auto run = [&](const Task& t) {
    try {
      if (t.type == Task::Bundle) {
        std::vector<std::string> msgs;
        FileCheckSink sink(files.at(t.backup->label).at(t.bundle), msgs);
        Digest d = repo.get_object(t.key, sink);
        bytes += d.size;
        for (const auto& mb : t.backup->bundles) {
          if (mb.index != t.bundle) continue;
          if (mb.plain_size != d.size) {
            msgs.push_back("plaintext size " + std::to_string(d.size) + ", manifest says " + std::to_string(mb.plain_size));
          }
          if (!mb.sha256.empty() && mb.sha256 != to_hex(d.sha256)) {
            msgs.push_back("plaintext SHA-256 " + to_hex(d.sha256) + ", manifest says " + mb.sha256);
          }
        }
        for (const auto& m : msgs) problem(t.key, "corruption", "backup " + t.backup->label + ": " + m);
      } else {
        CountingSink sink;
        Digest d = repo.get_object(t.key, sink);
        bytes += d.size;
        if (t.segment) {
          if (sink.size != inv.wal_segment_size) {
            problem(t.key, "corruption", "segment of " + std::to_string(sink.size) + " bytes, expected " +
                                             std::to_string(inv.wal_segment_size));
          } else {
            WalLongHeader h = parse_wal_long_header(sink.header, t.key);
            auto name = WalFileName::parse(t.wal->name);
            if (auto bad = check_segment_header(h, *name, inv.wal_segment_size, sysid ? sysid : h.system_identifier)) {
              problem(t.key, "corruption", bad->what());
            }
          }
        }
      }
    } catch (const Error& e) {
      switch (e.kind()) {
        case ErrorKind::Corruption:
        case ErrorKind::Auth:
          problem(t.key, "corruption", e.what());
          break;
        case ErrorKind::NotFound:
          problem(t.key, "missing", t.backup ? "backup " + t.backup->label + ": bundle named by the manifest is missing"
                                             : std::string(e.what()));
          break;
        default: {
          std::lock_guard g(mu);
          if (!fatal) fatal = e;
        }
      }
    }
    ++done;
  };
  int n = opts.parallel > 0 ? opts.parallel : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n = std::max(1, std::min<int>(n, static_cast<int>(tasks.size())));
  ThreadGroup threads([&] { next = tasks.size(); });  // on a failed start, the started workers take no more
  for (int i = 0; i < n; ++i) {
    threads.start([&] {
      for (std::size_t k; (k = next.fetch_add(1)) < tasks.size();) {
        {
          std::lock_guard g(mu);
          if (fatal) return;
        }
        run(tasks[k]);
      }
    });
  }
  if (opts.progress) {
    while (done.load() < tasks.size()) {
      {
        std::lock_guard g(mu);
        if (fatal) break;
      }
      std::fprintf(stderr, "\rverifying: %llu of %zu objects, %s  ", static_cast<unsigned long long>(done.load()),
                   tasks.size(), human_bytes(bytes.load()).c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  threads.join();
  if (opts.progress) std::fprintf(stderr, "\r%60s\r", "");
  if (fatal) throw *fatal;
  rep.objects += done.load();
  rep.bytes += bytes.load();

  // WAL continuity from each backup's start along every timeline descending from it.
  std::set<std::string> reported;
  for (const auto& b : inv.backups) {
    for (std::uint32_t tli : descendant_timelines(inv, b.timeline, b.start_lsn)) {
      std::vector<ChainStep> chain;
      try {
        chain = timeline_chain(inv, b.timeline, b.start_lsn, tli);
      } catch (const Error& e) {
        continue;  // history problems are reported above
      }
      WalCheck c = check_wal_path(inv, chain, b.start_lsn, std::nullopt, b.stop_lsn ? b.stop_lsn - 1 : 0);
      for (const auto& name : c.missing_all) {
        if (!reported.insert(name).second) continue;
        problem(keys::wal(*WalFileName::parse(name)), "missing",
                "WAL segment " + name + " is missing: recovery from backup " + b.label + " (timeline " +
                    std::to_string(b.timeline) + ") to timeline " + std::to_string(tli) + " stops before it");
      }
    }
  }
  std::sort(rep.problems.begin(), rep.problems.end(),
            [](const VerifyProblem& x, const VerifyProblem& y) { return std::tie(x.key, x.message) < std::tie(y.key, y.message); });
  return rep;
}

// ---- rendering ----

std::string inventory_text(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify) {
  std::ostringstream o;
  o << "repository " << repository;
  if (inv.identity) {
    o << ": database system " << inv.identity->system_identifier << ", PostgreSQL " << inv.identity->pg_version
      << ", WAL segments of " << human_bytes(inv.wal_segment_size);
  } else {
    o << ": empty (nothing archived yet)";
  }
  o << "\n\nbackups (" << inv.backups.size() << ")\n";
  if (!inv.backups.empty()) {
    std::vector<std::vector<std::string>> rows = {
        {"label", "type", "tli", "start time", "stop time", "duration", "start lsn", "stop lsn", "size", "stored"}};
    for (const auto& b : inv.backups) {
      rows.push_back({b.label, b.type, std::to_string(b.timeline), b.start_time, b.stop_time,
                      duration_text(duration_seconds(b)), format_lsn(b.start_lsn), format_lsn(b.stop_lsn),
                      human_bytes(b.total_bytes), human_bytes(b.stored_bytes)});
    }
    o << table(rows);
  }
  if (!inv.incomplete.empty()) {
    o << "\nincomplete backups (" << inv.incomplete.size() << ", invisible to pitr-prepare)\n";
    std::vector<std::vector<std::string>> rows = {{"label", "objects", "stored", "last write", "reason"}};
    for (const auto& i : inv.incomplete) {
      rows.push_back({i.label, std::to_string(i.objects), human_bytes(i.stored_bytes), format_utc(i.newest_mtime),
                      i.error.empty() ? "no manifest (unfinished or interrupted)" : i.error});
    }
    o << table(rows);
  }
  o << "\nWAL by timeline\n";
  if (inv.wal.empty()) {
    o << "  (none)\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"tli", "first", "last", "segments", "stored", "gaps"}};
    for (const auto& [tli, tl] : inv.wal) {
      std::string gaps;
      for (const auto& g : timeline_gaps(tl)) {
        if (!gaps.empty()) gaps += ", ";
        gaps += segment_file_name(tli, g.first, inv.wal_segment_size);
        if (g.last != g.first) gaps += ".." + segment_file_name(tli, g.last, inv.wal_segment_size);
      }
      rows.push_back({std::to_string(tli), tl.segments.empty() ? "-" : tl.segments.front().name,
                      tl.segments.empty() ? "-" : tl.segments.back().name, std::to_string(tl.segments.size()) +
                      (tl.partials.empty() ? "" : " + " + std::to_string(tl.partials.size()) + " partial"),
                      human_bytes(stored_bytes(tl)), gaps.empty() ? "none" : gaps});
    }
    o << table(rows);
  }
  if (!inv.histories.empty()) {
    o << "\ntimeline history\n";
    std::vector<std::vector<std::string>> rows = {{"tli", "parent", "switchpoint", "reason"}};
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
  o << "\nrecovery window\n";
  if (!w.available) {
    o << "  none: no complete backup whose WAL reaches its end\n";
  } else {
    o << "  earliest  " << w.earliest_time << "  " << format_lsn(w.earliest_lsn) << "  (end of backup "
      << w.earliest_backup << ")\n";
    o << "  latest    " << (w.latest_mtime ? format_utc(w.latest_mtime) : std::string("?")) << "  "
      << format_lsn(w.latest_lsn) << "  (end of " << w.latest_segment << ", timeline " << w.latest_timeline
      << "; the time is when it was archived)\n";
  }
  if (verify) {
    o << "\nverify: " << verify->objects << " objects, " << human_bytes(verify->bytes) << " checked, "
      << verify->problems.size() << " problem" << (verify->problems.size() == 1 ? "" : "s") << "\n";
    for (const auto& p : verify->problems) o << "  PROBLEM " << p.kind << " " << p.key << ": " << p.message << "\n";
  }
  return o.str();
}

std::string inventory_json(const std::string& repository, const Inventory& inv, const RecoveryWindow& w,
                           const VerifyReport* verify) {
  using nlohmann::json;
  json j;
  j["repository"] = repository;
  if (inv.identity) {
    j["identity"] = {{"system_identifier", std::to_string(inv.identity->system_identifier)},
                     {"pg_version", inv.identity->pg_version},
                     {"wal_segment_size", inv.identity->wal_segment_size}};
  } else {
    j["identity"] = nullptr;
  }
  j["backups"] = json::array();
  for (const auto& b : inv.backups) {
    json ts = json::array();
    for (const auto& t : b.tablespaces) ts.push_back({{"oid", t.oid}, {"location", t.location}});
    j["backups"].push_back({{"label", b.label},
                            {"type", b.type},
                            {"timeline", b.timeline},
                            {"start_time", b.start_time},
                            {"stop_time", b.stop_time},
                            {"duration_seconds", duration_seconds(b)},
                            {"start_lsn", format_lsn(b.start_lsn)},
                            {"stop_lsn", format_lsn(b.stop_lsn)},
                            {"start_wal", b.start_wal},
                            {"stop_wal", b.stop_wal},
                            {"size_bytes", b.total_bytes},
                            {"stored_bytes", b.stored_bytes},
                            {"files", b.files.size()},
                            {"pg_version", b.pg_version},
                            {"tablespaces", ts}});
  }
  j["incomplete_backups"] = json::array();
  for (const auto& i : inv.incomplete) {
    j["incomplete_backups"].push_back({{"label", i.label},
                                       {"objects", i.objects},
                                       {"stored_bytes", i.stored_bytes},
                                       {"newest_mtime", format_utc(i.newest_mtime)},
                                       {"error", i.error}});
  }
  j["wal"] = json::array();
  for (const auto& [tli, tl] : inv.wal) {
    json gaps = json::array();
    for (const auto& g : timeline_gaps(tl)) {
      gaps.push_back({{"first", segment_file_name(tli, g.first, inv.wal_segment_size)},
                      {"last", segment_file_name(tli, g.last, inv.wal_segment_size)},
                      {"segments", g.last - g.first + 1}});
    }
    j["wal"].push_back({{"timeline", tli},
                        {"first", tl.segments.empty() ? "" : tl.segments.front().name},
                        {"last", tl.segments.empty() ? "" : tl.segments.back().name},
                        {"segments", tl.segments.size()},
                        {"stored_bytes", stored_bytes(tl)},
                        {"partials", tl.partials.size()},
                        {"gaps", gaps}});
  }
  j["history"] = json::array();
  for (const auto& [tli, h] : inv.histories) {
    json parents = json::array();
    for (const auto& e : h.entries) {
      parents.push_back({{"timeline", e.parent}, {"switchpoint", format_lsn(e.switchpoint)}, {"reason", e.reason}});
    }
    j["history"].push_back({{"timeline", tli}, {"key", h.key}, {"parents", parents}, {"error", h.error}});
  }
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
  j["recovery_window"] = win;
  if (verify) {
    json probs = json::array();
    for (const auto& p : verify->problems) probs.push_back({{"key", p.key}, {"kind", p.kind}, {"message", p.message}});
    j["verify"] = {{"objects", verify->objects}, {"bytes", verify->bytes}, {"problems", probs}};
  } else {
    j["verify"] = nullptr;
  }
  return j.dump(2) + "\n";
}

}  // namespace pgvault
