#include "common/backup/backup.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "common/base/errors.h"
#include "common/base/format.h"
#include "common/base/text.h"
#include "common/crypto/crypto.h"
#include "common/pg/crc32c.h"
#include "common/pg/pgconn.h"
#include "common/pg/tar.h"
#include "common/pg/wal.h"
#include "common/repo/backup_bundles.h"
#include "common/repo/backups.h"
#include "common/storage/storage_fs.h"

namespace pgvault {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace stdfs = std::filesystem;

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int signo) { g_signal = signo; }

void check_interrupt() {
  if (int s = g_signal) {
    throw Error(ErrorKind::Interrupted, std::string("interrupted by ") + (s == SIGTERM ? "SIGTERM" : "SIGINT"));
  }
}



// A progress line on stderr, rewritten in place at most twice a second.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), start_(Clock::now()) {}
  void set_total(std::uint64_t total) { total_ = total; }
  void set_done(std::uint64_t done) { done_ = done; }
  void set_phase(std::string phase) {
    phase_ = std::move(phase);
    tick(true);
  }
  void tick(bool force = false) {
    if (!enabled_) return;
    auto now = Clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? done_ / secs : 0;
    std::string line = human_bytes(static_cast<double>(done_));
    if (total_ > 0) {
      int pct = static_cast<int>(std::min<double>(100.0, 100.0 * done_ / total_));
      line += " / " + human_bytes(static_cast<double>(total_)) + " (" + std::to_string(pct) + "%)";
    }
    line += "  " + human_bytes(rate) + "/s";
    if (total_ > done_ && rate > 0) line += "  ETA " + human_duration((total_ - done_) / rate);
    if (!phase_.empty()) line += "  " + phase_;
    std::fprintf(stderr, "\r%-100.100s", line.c_str());
    std::fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (enabled_ && shown_) {
      std::fprintf(stderr, "\r%100s\r", "");
      std::fflush(stderr);
    }
    shown_ = false;
  }

 private:
  bool enabled_;
  Clock::time_point start_, last_{};
  std::uint64_t total_ = 0, done_ = 0;
  std::string phase_;
  bool shown_ = false;
};

std::string sql_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else out += c;
  }
  return out + "'";
}

// Receives the tar archives: files into bundles, directories and links into the manifest.
class Receiver final : public TarHandler {
 public:
  Receiver(BackupManifest& m, BundleUploader& bundles, std::uint64_t bundle_size)
      : m_(m), bundles_(bundles), bundle_size_(bundle_size) {}

  void start_archive(std::uint32_t tablespace, std::string name) {
    tablespace_ = tablespace;
    archive_ = std::move(name);
  }
  std::uint64_t bytes() const { return bytes_; }
  const std::map<std::uint32_t, std::string>& tablespace_links() const { return links_; }

  void begin_entry(const TarEntry& e) override {
    switch (e.type) {
      case TarEntry::Type::Directory:
        m_.directories.push_back({e.path, tablespace_, e.mode});
        return;
      case TarEntry::Type::Symlink:
        if (tablespace_ == 0 && e.path.rfind("pg_tblspc/", 0) == 0) {
          try {
            links_[static_cast<std::uint32_t>(std::stoul(e.path.substr(10)))] = e.link_target;
          } catch (const std::exception&) {
            spdlog::warn("{}: ignoring unexpected link {} -> {}", archive_, e.path, e.link_target);
          }
        } else {
          spdlog::warn("{}: ignoring symbolic link {} -> {} (PostgreSQL sends links only in pg_tblspc)", archive_,
                       e.path, e.link_target);
        }
        return;
      case TarEntry::Type::Other:
        spdlog::warn("{}: ignoring tar entry {} of type '{}'", archive_, e.path, e.typeflag);
        return;
      case TarEntry::Type::File: break;
    }
    // Placement: a file larger than the bundle size gets a bundle of its own; otherwise it goes into the
    // open bundle unless it would overflow it.
    if (e.size > bundle_size_) {
      bundles_.open(next_bundle_++, static_cast<std::size_t>(std::min<std::uint64_t>(bundle_size_, 8u << 20)), true);
      offset_ = 0;
      dedicated_ = true;
    } else if (!bundles_.is_open() || (offset_ > 0 && offset_ + e.size > bundle_size_)) {
      bundles_.open(next_bundle_++, static_cast<std::size_t>(bundle_size_), false);
      offset_ = 0;
      dedicated_ = false;
    }
    cur_ = ManifestFile{};
    cur_.path = e.path;
    cur_.tablespace = tablespace_;
    cur_.size = e.size;
    cur_.mode = e.mode;
    cur_.mtime = e.mtime;
    cur_.bundle = next_bundle_ - 1;
    cur_.offset = offset_;
    in_file_ = true;
    received_ = 0;
    crc_ = Crc32c{};
    capture_ = tablespace_ == 0 && (e.path == "backup_label" || e.path == "tablespace_map");
    captured_.clear();
  }

  void entry_data(ByteView d) override {
    if (!in_file_) return;  // content of a skipped entry
    crc_.update(d);
    bundles_.write(d);
    if (capture_) captured_.append(reinterpret_cast<const char*>(d.data()), d.size());
    offset_ += d.size();
    received_ += d.size();
    bytes_ += d.size();
  }

  void end_entry() override {
    if (!in_file_) return;
    in_file_ = false;
    if (received_ != cur_.size) {
      throw Error(ErrorKind::Corruption, archive_ + ": " + cur_.path + " ended after " + std::to_string(received_) +
                                             " of " + std::to_string(cur_.size) + " bytes");
    }
    cur_.crc32c = crc_.hex();
    if (capture_) {
      if (cur_.path == "backup_label") m_.backup_label = captured_;
      else m_.tablespace_map = captured_;
    }
    m_.files.push_back(std::move(cur_));
    if (dedicated_) {
      bundles_.close();
      dedicated_ = false;
    }
  }

 private:
  BackupManifest& m_;
  BundleUploader& bundles_;
  std::uint64_t bundle_size_;
  std::uint32_t tablespace_ = 0;
  std::string archive_;
  std::uint64_t next_bundle_ = 0;
  std::uint64_t offset_ = 0;
  bool dedicated_ = false;
  bool in_file_ = false;
  ManifestFile cur_;
  std::uint64_t received_ = 0;
  Crc32c crc_;
  bool capture_ = false;
  std::string captured_;
  std::uint64_t bytes_ = 0;
  std::map<std::uint32_t, std::string> links_;
};

std::uint64_t read_be64(std::string_view p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

std::pair<std::uint64_t, std::uint32_t> lsn_result(PGresult* r, std::string_view what) {
  if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) < 2) {
    throw Error(ErrorKind::Transient, std::string(what) + ": unexpected result from BASE_BACKUP");
  }
  std::uint64_t lsn = parse_lsn(PQgetvalue(r, 0, 0), what);
  std::uint32_t tli = 0;
  try {
    tli = static_cast<std::uint32_t>(std::stoul(PQgetvalue(r, 0, 1)));
  } catch (const std::exception&) {
    throw Error(ErrorKind::Transient, std::string(what) + ": unexpected timeline from BASE_BACKUP");
  }
  return {lsn, tli};
}

std::string random_token() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

std::string claim_text(const std::string& token) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  json j = {{"tool", "base-push"}, {"host", host}, {"pid", static_cast<long>(::getpid())},
            {"token", token},      {"time", now_iso8601()}};
  return j.dump() + "\n";
}

// The token in the label's claim; nullopt when there is no claim, "" when it is unreadable.
std::optional<std::string> claim_token(Storage& storage, const std::string& label) {
  try {
    Bytes data = read_all(storage, keys::backup_claim(label));
    json j = json::parse(data.begin(), data.end());
    return j.is_object() ? j.value("token", "") : "";
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound) return std::nullopt;
    throw;
  } catch (const json::exception&) {
    return "";
  }
}

// Gives up a failed backup: deletes what this run wrote (the manifest first if it was attempted, then
// the bundles, the claim last), but only while the claim is still its own. Best effort, never throws.
void abandon_backup(Storage& storage, const BackupClaim& claim, std::vector<std::string> own,
                    bool manifest_attempted) {
  try {
    if (!claim_holds(storage, claim)) {
      spdlog::warn("backup {} abandoned; its label is claimed by another base-push now, so nothing is deleted "
                   "(retention-prune removes leftovers)",
                   claim.label);
      return;
    }
    if (manifest_attempted) storage.remove(keys::backup_manifest(claim.label));
    if (!own.empty()) storage.remove_many(own);
    storage.remove(keys::backup_claim(claim.label));
    spdlog::info("backup {} abandoned; its {} uploaded object(s) and its claim deleted", claim.label, own.size());
  } catch (const std::exception& e) {
    spdlog::warn("backup {} abandoned; could not delete its uploaded objects ({}); retention-prune removes them later",
                 claim.label, e.what());
  }
}

// On the fs backend, removes the temporary files that killed runs left in the newest `max_dirs` backup
// directories (a killed base-push never writes to its label again, so the puts' own sweep never reaches
// them). Only provably dead writers' files (storage_fs.h); one listing of backups/ and one per directory.
void sweep_backup_dirs(const Repository& repo, std::size_t max_dirs) {
  if (repo.config().repository.type != "fs") return;
  std::error_code ec;
  const stdfs::path dir = stdfs::path(repo.config().repository.path) / keys::backups_prefix();
  std::vector<std::string> labels;
  for (stdfs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) labels.push_back(it->path().filename().string());
  }
  std::sort(labels.rbegin(), labels.rend());
  std::size_t removed = 0;
  for (std::size_t i = 0; i < labels.size() && i < max_dirs; ++i) {
    removed += sweep_dead_temporaries((dir / labels[i]).string());
  }
  if (removed) spdlog::info("removed {} temporary file(s) left by killed base-push runs in {}", removed, dir.string());
}

void wait_until_second(std::int64_t t) {
  while (static_cast<std::int64_t>(std::time(nullptr)) < t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    check_interrupt();
  }
}

void wait_for_segment(Repository& repo, const std::string& segment, int timeout_s, Progress& progress) {
  auto name = WalFileName::parse(segment);
  if (!name) throw Error(ErrorKind::Internal, "bad stop segment name " + segment);
  const std::string key = keys::wal(*name);
  progress.set_phase("waiting for " + segment + " to be archived");
  spdlog::debug("waiting for {} in {}", key, repo.describe());
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  // PostgreSQL archives the stop segment right after the backup ends, usually within a few hundred ms:
  // poll often at first (a HEAD is cheap), then back off.
  auto delay = std::chrono::milliseconds(20);
  for (;;) {
    if (repo.storage().head(key)) return;
    if (Clock::now() >= deadline) {
      throw Error(ErrorKind::Transient,
                  "WAL segment " + segment + " (the backup's stop segment) was not archived into " +
                      repo.describe() + " within " + std::to_string(timeout_s) +
                      " s; check archive_command and the server log (HINT: --archive-timeout to wait longer)");
    }
    auto until = std::min(Clock::now() + delay, deadline);
    while (Clock::now() < until) {
      std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
      check_interrupt();
      progress.tick();
    }
    delay = std::min(delay * 3 / 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns EINTR at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool claim_holds(Storage& storage, const BackupClaim& claim) {
  auto token = claim_token(storage, claim.label);
  return token && *token == claim.token;
}

BackupClaim claim_backup_label(Storage& storage, const ClaimOptions& opts) {
  const int attempts = std::max(opts.attempts, 1);
  std::int64_t t = opts.now();
  std::string first;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) {
      t = std::max(opts.now(), t + 1);
      opts.wait_until(t);
    }
    BackupClaim c{make_backup_label(t, false), random_token()};
    if (first.empty()) first = c.label;
    const std::string key = keys::backup_claim(c.label);
    try {
      write_all(storage, key, as_bytes(claim_text(c.token)), PutOptions{.if_absent = true, .size = {}});
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Duplicate) throw;
      spdlog::info("backup label {} is claimed by another base-push; taking the next second's", c.label);
      continue;
    }
    if (opts.settle.count() > 0) std::this_thread::sleep_for(opts.settle);
    if (!claim_holds(storage, c)) {
      spdlog::info("backup label {} was claimed by another base-push at the same time; taking the next second's",
                   c.label);
      continue;
    }
    bool others = false;
    for (const auto& o : storage.list(keys::backup_prefix(c.label))) others = others || o.key != key;
    if (others) {
      spdlog::warn("backup label {} already holds objects not written by this run in {}; taking the next second's",
                   c.label, storage.describe());
      storage.remove(key);
      continue;
    }
    return c;
  }
  throw Error(ErrorKind::Conflict, "no backup label free in " + storage.describe() + ": " + first + " and the " +
                                       std::to_string(attempts - 1) +
                                       " following seconds are claimed by other base-push runs");
}

std::uint64_t parse_pg_size(const std::string& text) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') v = v * 10 + (text[i++] - '0');
  std::string unit = text.substr(i);
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "kB") mult = 1024;
  else if (unit == "MB") mult = 1024 * 1024;
  else if (unit == "GB") mult = 1024ull * 1024 * 1024;
  if (i == 0 || mult == 0) throw Error(ErrorKind::InvalidInput, "unexpected size \"" + text + "\" from the server");
  return v * mult;
}

BackupOptions backup_options_from_config(const Config& config) {
  BackupOptions o;
  o.conninfo = config.backup.conninfo;
  o.checkpoint = config.backup.checkpoint;
  o.parallel = config.backup.parallel;
  o.bundle_size = config.backup.bundle_size;
  return o;
}

namespace {

// Our text form (crc32c_hex(): the value, most significant digit first) as PostgreSQL's backup_manifest
// prints it: the 4 bytes of its uint32 pg_crc32c in the server's memory order, each as 2 hex digits
// (pg_verifybackup compares those bytes with its own value in memory). On a little-endian server
// 0xe3069283 is "839206e3".
std::string crc32c_as_server_prints(const std::string& ours, std::endian order) {
  if (ours.size() != 8 || order == std::endian::big) return ours;
  return ours.substr(6, 2) + ours.substr(4, 2) + ours.substr(2, 2) + ours.substr(0, 2);
}

// The server's byte order is its own (the client may be another machine): a little-endian server is
// the rule, but a big-endian one (s390x) prints the value in its natural order, so both are accepted.
// Accepting the byte-swapped value too costs one bit of the 32 against a random corruption.
bool server_crc32c_matches(const std::string& server_text, const std::string& ours) {
  const std::string server = ascii_lower(server_text);
  return ours.size() == 8 && (server == crc32c_as_server_prints(ours, std::endian::little) ||
                              server == crc32c_as_server_prints(ours, std::endian::big));
}

}  // namespace

void verify_server_manifest(const std::string& text, const std::vector<ManifestFile>& files) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, std::string("server backup_manifest is not valid JSON: ") + e.what());
  }
  // The manifest's own checksum: SHA-256 of everything before the "Manifest-Checksum" line.
  auto pos = text.rfind("\"Manifest-Checksum\"");
  if (pos == std::string::npos || !j.contains("Manifest-Checksum")) {
    throw Error(ErrorKind::Corruption, "server backup_manifest has no Manifest-Checksum");
  }
  std::string expected_sum = j["Manifest-Checksum"].get<std::string>();
  if (to_hex(sha256(as_bytes(std::string_view(text).substr(0, pos)))) != expected_sum) {
    throw Error(ErrorKind::Corruption, "server backup_manifest checksum mismatch (damaged in transit)");
  }
  struct Entry {
    std::uint64_t size;
    std::string algorithm, checksum;
    bool seen = false;
  };
  std::map<std::string, Entry> server;
  try {
    for (const auto& f : j.at("Files")) {
      std::string path;
      if (f.contains("Path")) {
        path = f["Path"].get<std::string>();
      } else {
        Bytes raw = from_hex(f.at("Encoded-Path").get<std::string>());
        path.assign(raw.begin(), raw.end());
      }
      server[path] = Entry{f.at("Size").get<std::uint64_t>(), f.value("Checksum-Algorithm", ""),
                           f.value("Checksum", ""), false};
    }
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, std::string("server backup_manifest: unexpected content: ") + e.what());
  }
  std::vector<std::string> problems;
  for (const auto& f : files) {
    std::string path = f.tablespace ? "pg_tblspc/" + std::to_string(f.tablespace) + "/" + f.path : f.path;
    auto it = server.find(path);
    if (it == server.end()) {
      problems.push_back(path + " received but not in the server's manifest");
      continue;
    }
    it->second.seen = true;
    if (it->second.size != f.size) {
      problems.push_back(path + " has " + std::to_string(f.size) + " bytes, the server's manifest says " +
                         std::to_string(it->second.size));
    } else if (it->second.algorithm != "CRC32C") {
      problems.push_back(path + ": the server's manifest has no CRC32C checksum (" + it->second.algorithm + ")");
    } else if (!server_crc32c_matches(it->second.checksum, f.crc32c)) {
      problems.push_back(path + " CRC-32C " + f.crc32c + " differs from the server's manifest " + it->second.checksum +
                         " (PostgreSQL prints the bytes of the value as they lie in its memory: " +
                         crc32c_as_server_prints(f.crc32c, std::endian::little) + " on a little-endian server)");
    }
  }
  for (const auto& [path, e] : server) {
    if (!e.seen) problems.push_back(path + " is in the server's manifest but was not received");
  }
  if (!problems.empty()) {
    std::string msg = "backup does not match the server's backup_manifest (" + std::to_string(problems.size()) +
                      " problem(s)): ";
    for (std::size_t i = 0; i < problems.size() && i < 5; ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(ErrorKind::Corruption, msg);
  }
}

BackupResult run_base_backup(Repository& repo, const BackupOptions& opts) {
  if (opts.checkpoint != "fast" && opts.checkpoint != "spread") {
    throw Error(ErrorKind::InvalidInput, "checkpoint must be \"fast\" or \"spread\", not \"" + opts.checkpoint + "\"");
  }
  if (opts.bundle_size < 4096) throw Error(ErrorKind::Config, "[backup] bundle_size must be at least 4KiB");
  if (opts.archive_timeout < 0) throw Error(ErrorKind::InvalidInput, "--archive-timeout must not be negative");
  check_interrupt();

  const auto t0 = Clock::now();
  BackupResult result;
  BackupManifest& m = result.manifest;
  Progress progress(opts.progress);

  // 1. Server checks.
  ReplicationConnection conn(opts.conninfo, check_interrupt);
  const int version = conn.server_version();
  result.server_version = std::to_string(version / 10000) + "." + std::to_string(version % 10000);
  if (version < 150000) {
    throw Error(ErrorKind::Config, conn.describe() + " runs PostgreSQL " + result.server_version +
                                       "; base-push needs PostgreSQL 15 or newer");
  }
  SystemInfo sys = conn.identify_system();
  std::string wal_level = conn.show("wal_level");
  if (wal_level == "minimal") {
    throw Error(ErrorKind::Config, conn.describe() + " has wal_level = minimal; a base backup needs replica or logical");
  }
  std::string archive_mode = conn.show("archive_mode");
  if (archive_mode == "off") {
    throw Error(ErrorKind::Config, conn.describe() +
                                       " has archive_mode = off: base-push relies on the WAL archive "
                                       "(HINT: set archive_mode = on and archive_command = 'wal-push %p', then restart)");
  }
  // archive_mode on with neither archive_command nor archive_library: nothing is ever archived, so the
  // stop segment would never arrive. (Skipped if the role may not read the settings.)
  bool archives_nothing = false;
  try {
    archives_nothing = conn.show("archive_command").empty() && conn.show("archive_library").empty();
  } catch (const Error& e) {
    spdlog::debug("cannot read archive_command: {}", e.what());
  }
  if (archives_nothing) {
    throw Error(ErrorKind::Config, conn.describe() +
                                       " archives nothing (archive_command and archive_library are empty): "
                                       "base-push relies on the WAL archive (HINT: archive_command = 'wal-push %p')");
  }
  const std::uint32_t seg_size = static_cast<std::uint32_t>(parse_pg_size(conn.show("wal_segment_size")));
  if (!valid_segment_size(seg_size)) {
    throw Error(ErrorKind::Transient, "server reports an invalid wal_segment_size " + std::to_string(seg_size));
  }
  if (auto existing = repo.identity(); existing && existing->system_identifier != sys.system_identifier) {
    throw Error(ErrorKind::Foreign, "base backup of database system " + std::to_string(sys.system_identifier) +
                                        " refused: repository " + repo.describe() + " belongs to database system " +
                                        std::to_string(existing->system_identifier) +
                                        " (two clusters must not share a repository)");
  }
  Identity proposed;
  proposed.system_identifier = sys.system_identifier;
  proposed.pg_version = version / 10000;
  proposed.wal_segment_size = seg_size;
  Identity ident = repo.ensure_identity(proposed);
  if (ident.wal_segment_size != seg_size) {
    throw Error(ErrorKind::Config, "repository " + repo.describe() + " records WAL segments of " +
                                       std::to_string(ident.wal_segment_size) + " bytes but the server uses " +
                                       std::to_string(seg_size));
  }
  BundleUploaderOptions uo;
  uo.encode = repo.encode_options();  // loads/creates the key record now, in this thread
  int parallel = opts.parallel > 0 ? opts.parallel : static_cast<int>(std::thread::hardware_concurrency());
  parallel = std::max(parallel, 1);
  uo.workers = parallel;
  uo.max_open = static_cast<std::size_t>(parallel) + 1;
  uo.large_file_threads = (uo.encode.compression == Compression::Zstd && uo.encode.threads == 0 && parallel > 1 &&
                           repo.config().compression.threads == Config::CompressionCfg::kAutoThreads)
                              ? parallel
                              : 0;

  ClaimOptions co;
  co.now = [] { return static_cast<std::int64_t>(std::time(nullptr)); };
  co.wait_until = wait_until_second;
  // Without conditional writes (S3 stores such as Swift) the claim is HEAD-then-PUT: a pause before the
  // read-back lets a PUT of another run that raced ours land first, so the read-back sees it.
  if (repo.config().repository.type != "fs") co.settle = std::chrono::milliseconds(500);
  const BackupClaim claim = claim_backup_label(repo.storage(), co);
  sweep_backup_dirs(repo, 64);
  const std::string label = claim.label;
  m.label = label;
  m.type = "full";
  m.start_time = now_iso8601();
  m.pg_version = version / 10000;
  m.system_identifier = sys.system_identifier;
  m.wal_segment_size = seg_size;
  spdlog::info("base backup {} of database system {} (PostgreSQL {}, {}) into {}", label, sys.system_identifier,
               result.server_version, conn.describe(), repo.describe());

  BundleUploader uploader(repo.storage(), label, uo, check_interrupt);
  bool manifest_attempted = false;
  try {
    // 2. BASE_BACKUP and the stream.
    std::string cmd = "BASE_BACKUP ( LABEL " + sql_quote("pgvault " + label) + ", PROGRESS, CHECKPOINT " +
                      sql_quote(opts.checkpoint) +
                      ", WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP, TARGET 'client' )";
    spdlog::debug("{}", cmd);
    progress.set_phase(opts.checkpoint == "fast" ? "waiting for checkpoint" : "waiting for a spread checkpoint");
    conn.send(cmd);
    PgResult start = conn.next_result("BASE_BACKUP");
    auto [start_lsn, start_tli] = lsn_result(start.get(), "backup start position");
    m.start_lsn = start_lsn;
    m.timeline = start_tli;
    m.start_wal = segment_file_name(start_tli, start_lsn / seg_size, seg_size);

    PgResult tbs = conn.next_result("BASE_BACKUP");
    if (!tbs || PQresultStatus(tbs.get()) != PGRES_TUPLES_OK || PQnfields(tbs.get()) < 3) {
      throw Error(ErrorKind::Transient, "BASE_BACKUP: unexpected tablespace list");
    }
    std::uint64_t total = 0;
    std::map<std::string, std::uint32_t> oid_by_location;
    for (int i = 0; i < PQntuples(tbs.get()); ++i) {
      if (!PQgetisnull(tbs.get(), i, 2)) total += std::stoull(PQgetvalue(tbs.get(), i, 2)) * 1024;
      if (PQgetisnull(tbs.get(), i, 0)) continue;  // the data directory
      ManifestTablespace t;
      t.oid = static_cast<std::uint32_t>(std::stoul(PQgetvalue(tbs.get(), i, 0)));
      t.location = PQgetvalue(tbs.get(), i, 1);
      oid_by_location[t.location] = t.oid;
      m.tablespaces.push_back(t);
    }
    progress.set_total(total);
    PgResult copy = conn.next_result("BASE_BACKUP");
    while (copy && PQresultStatus(copy.get()) == PGRES_COMMAND_OK) copy = conn.next_result("BASE_BACKUP");
    if (!copy || PQresultStatus(copy.get()) != PGRES_COPY_OUT) {
      throw Error(ErrorKind::Transient, "BASE_BACKUP: the server did not start the data stream");
    }
    progress.set_phase("");

    Receiver receiver(m, uploader, opts.bundle_size);
    std::unique_ptr<TarParser> parser;
    std::string server_manifest;
    bool in_manifest = false;
    std::string_view msg;
    while (conn.copy_data(msg)) {
      check_interrupt();
      if (msg.empty()) continue;
      std::string_view payload = msg.substr(1);
      switch (msg[0]) {
        case 'n': {  // new archive: name, tablespace path ("" for the data directory)
          if (parser) parser->finish();
          auto nul = payload.find('\0');
          if (nul == std::string_view::npos) throw Error(ErrorKind::Transient, "BASE_BACKUP: malformed archive header");
          std::string name(payload.substr(0, nul));
          std::string_view rest = payload.substr(nul + 1);
          std::string path(rest.substr(0, rest.find('\0')));
          std::uint32_t oid = 0;
          if (!path.empty()) {
            auto it = oid_by_location.find(path);
            if (it == oid_by_location.end()) {
              throw Error(ErrorKind::Transient, "BASE_BACKUP: archive " + name + " for unknown tablespace " + path);
            }
            oid = it->second;
          }
          spdlog::debug("receiving archive {} (tablespace {})", name, oid ? std::to_string(oid) : "data directory");
          receiver.start_archive(oid, name);
          parser = std::make_unique<TarParser>(receiver, name);
          break;
        }
        case 'd':
          if (in_manifest) {
            server_manifest.append(payload);
          } else {
            if (!parser) throw Error(ErrorKind::Transient, "BASE_BACKUP: data before the first archive");
            parser->feed(as_bytes(payload));
          }
          break;
        case 'p':
          if (payload.size() >= 8) progress.set_done(read_be64(payload));
          break;
        case 'm':
          if (parser) parser->finish();
          parser.reset();
          in_manifest = true;
          break;
        default:
          throw Error(ErrorKind::Transient, std::string("BASE_BACKUP: unexpected message type '") + msg[0] + "'");
      }
      progress.tick();
    }
    if (parser) parser->finish();
    parser.reset();
    std::optional<std::pair<std::uint64_t, std::uint32_t>> stop;
    while (PgResult r = conn.next_result("BASE_BACKUP")) {
      if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && !stop) stop = lsn_result(r.get(), "backup stop position");
    }
    if (!stop) throw Error(ErrorKind::Transient, "BASE_BACKUP: the server sent no stop position");
    conn.abort();  // done with the server: close the connection
    m.stop_lsn = stop->first;
    const std::uint32_t stop_tli = stop->second;
    // The last segment the backup needs holds the byte just before the stop LSN.
    m.stop_wal = segment_file_name(stop_tli, (m.stop_lsn - 1) / seg_size, seg_size);

    progress.set_phase("finishing uploads");
    m.bundles = uploader.finish();

    // 3. The server's manifest.
    if (server_manifest.empty()) throw Error(ErrorKind::Transient, "BASE_BACKUP: the server sent no backup_manifest");
    verify_server_manifest(server_manifest, m.files);
    m.server_manifest_verified = true;
    if (m.backup_label.empty()) throw Error(ErrorKind::Transient, "BASE_BACKUP: no backup_label in the stream");
    for (const auto& [oid, target] : receiver.tablespace_links()) {
      bool known = std::any_of(m.tablespaces.begin(), m.tablespaces.end(), [&](const auto& t) { return t.oid == oid; });
      if (!known) spdlog::warn("pg_tblspc/{} -> {} is not in the server's tablespace list", oid, target);
    }

    // 4. The stop segment must be archived before the backup is usable.
    wait_for_segment(repo, m.stop_wal, opts.archive_timeout, progress);

    // 5. Commit.
    m.stop_time = now_iso8601();
    for (const auto& f : m.files) m.total_bytes += f.size;
    for (const auto& b : m.bundles) m.stored_bytes += b.stored_size;
    if (!claim_holds(repo.storage(), claim)) {
      throw Error(ErrorKind::Conflict, "backup " + label + ": another base-push took over the label's claim " +
                                           repo.describe() + "/" + keys::backup_claim(label) + "; not committing");
    }
    manifest_attempted = true;
    write_manifest(repo, m);
    progress.clear();
  } catch (...) {
    progress.clear();
    conn.abort();
    uploader.abort();
    abandon_backup(repo.storage(), claim, uploader.written_keys(), manifest_attempted);
    throw;
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

std::string backup_summary_line(const BackupResult& r) {
  const auto& m = r.manifest;
  double rate = r.seconds > 0 ? m.total_bytes / r.seconds : 0;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.0f%%", m.total_bytes ? 100.0 * m.stored_bytes / m.total_bytes : 0.0);
  return "backup " + m.label + " complete: " + human_bytes(static_cast<double>(m.total_bytes)) + " in " +
         std::to_string(m.files.size()) + " files, stored " + human_bytes(static_cast<double>(m.stored_bytes)) + " (" +
         pct + ") in " + std::to_string(m.bundles.size()) + " bundles, " + human_duration(r.seconds) + " (" +
         human_bytes(rate) + "/s), WAL " + m.start_wal + " to " + m.stop_wal;
}

std::string backup_summary_json(const BackupResult& r) {
  const auto& m = r.manifest;
  json j = {
      {"label", m.label},
      {"type", m.type},
      {"start_time", m.start_time},
      {"stop_time", m.stop_time},
      {"duration_seconds", r.seconds},
      {"timeline", m.timeline},
      {"start_lsn", format_lsn(m.start_lsn)},
      {"stop_lsn", format_lsn(m.stop_lsn)},
      {"start_wal", m.start_wal},
      {"stop_wal", m.stop_wal},
      {"pg_version", m.pg_version},
      {"server_version", r.server_version},
      {"system_identifier", std::to_string(m.system_identifier)},
      {"total_bytes", m.total_bytes},
      {"stored_bytes", m.stored_bytes},
      {"files", m.files.size()},
      {"bundles", m.bundles.size()},
      {"tablespaces", m.tablespaces.size()},
      {"server_manifest_verified", m.server_manifest_verified},
  };
  return j.dump() + "\n";
}

}  // namespace pgvault
