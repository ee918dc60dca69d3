// run_base_backup (backup.h) as named steps; the jobs are in their own files: server_checks (before
// the claim), label_claim, base_backup_stream and tar_receiver (the data), server_manifest (the
// received files' check), stop_segment (the wait for the archive), leftovers (cleaning up).
#include "common/backup/backup.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "common/backup/base_backup_stream.h"
#include "common/backup/incremental.h"
#include "common/backup/interrupt.h"
#include "common/backup/leftovers.h"
#include "common/backup/server_checks.h"
#include "common/backup/stop_segment.h"
#include "common/backup/tar_receiver.h"
#include "common/base/errors.h"
#include "common/base/format.h"
#include "common/base/progress.h"
#include "common/pg/wal.h"
#include "common/repo/backup_bundles.h"
#include "common/repo/backups.h"
#include "common/repo/layout.h"
#include "common/repo/lock.h"

namespace pgvault {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The newest backup folders whose killed runs' temporaries a run sweeps.
constexpr std::size_t kSweptBackupDirs = 64;

void check_options(const BackupOptions& opts) {
  if (opts.checkpoint != "fast" && opts.checkpoint != "spread") {
    throw Error(ErrorKind::InvalidInput, "checkpoint must be \"fast\" or \"spread\", not \"" + opts.checkpoint + "\"");
  }
  if (opts.bundle_size < 4096) throw Error(ErrorKind::Config, "[backup] bundle_size must be at least 4KiB");
  if (opts.archive_timeout < 0) throw Error(ErrorKind::InvalidInput, "--archive-timeout must not be negative");
  if (opts.type != "full" && opts.type != "incremental" && opts.type != "diff") {
    throw Error(ErrorKind::InvalidInput, "--type must be \"full\", \"incremental\" or \"diff\", not \"" + opts.type + "\"");
  }
}

}  // namespace

BundleUploaderOptions backup_uploader_options(Repository& repo, const BackupOptions& opts) {
  BundleUploaderOptions uo;
  // Loads/creates the key record now, in this thread; carries the zstd window and match-table caps (repo.h).
  uo.encode = repo.encode_options();
  int parallel = opts.parallel > 0 ? opts.parallel : static_cast<int>(std::thread::hardware_concurrency());
  parallel = std::max(parallel, 1);
  uo.workers = parallel;
  uo.max_open = static_cast<std::size_t>(parallel) + 1;
  uo.large_file_threads = (uo.encode.compression == Compression::Zstd && uo.encode.threads == 0 && parallel > 1 &&
                           repo.config().compression.threads == Config::CompressionCfg::kAutoThreads)
                              ? parallel
                              : 0;
  return uo;
}

namespace {

// One run of base-push once its label is claimed.
struct BackupRun {
  Repository& repo;
  const BackupOptions& opts;
  const ServerFacts& server;
  const BackupClaim& claim;
  BackupManifest& m;
  Progress& progress;
  IncrementalPlan* plan = nullptr;        // null: a full backup
  bool manifest_attempted = false;
  std::vector<std::string> own_keys;      // objects written outside the bundles (the server's manifest)
  const RepositoryLock& lock;
  DeferredConfirms& creates;              // the claim's and the bundles' create-if-absent checks
};

void begin_manifest(BackupRun& run) {
  BackupManifest& m = run.m;
  m.label = run.claim.label;
  m.type = "full";
  m.start_time = now_iso8601();
  m.pg_version = run.server.version / 10000;
  m.system_identifier = run.server.system.system_identifier;
  m.wal_segment_size = run.server.segment_size;
  if (run.plan) {
    m.type = "incremental";
    m.parent = run.plan->parent.label;
    m.incremental_mode = run.plan->mode();
    m.parent_start_lsn = run.plan->parent.start_lsn;
    m.parent_timeline = run.plan->parent.timeline;
  }
}

// BASE_BACKUP to its end: the files uploaded, the WAL range known. Closes the connection.
StreamedBackup receive_backup(BackupRun& run, ReplicationConnection& conn, BundleUploader& uploader,
                              TarReceiver& receiver) {
  BackupManifest& m = run.m;
  const std::uint32_t seg_size = run.server.segment_size;
  std::optional<IncrementalRequest> request;
  if (run.plan && run.plan->base.server_mode) {
    request = IncrementalRequest{run.plan->parent.label, run.plan->parent_server_manifest};
  }
  StreamedBackup s = stream_base_backup(conn, m.label, run.opts.checkpoint, m, receiver, run.progress,
                                        request ? &*request : nullptr);
  conn.abort();  // done with the server: close the connection
  m.start_wal = segment_file_name(m.timeline, m.start_lsn / seg_size, seg_size);
  m.stop_lsn = s.stop_lsn;
  // The last segment the backup needs holds the byte just before the stop LSN.
  m.stop_wal = segment_file_name(s.stop_timeline, (m.stop_lsn - 1) / seg_size, seg_size);
  run.progress.set_phase("finishing uploads");
  m.bundles = uploader.finish();
  return s;
}

// The received files against the server's manifest; backup_label present; links match tablespaces.
void check_received(BackupManifest& m, const StreamedBackup& s, const TarReceiver& receiver) {
  if (s.server_manifest.empty()) throw Error(ErrorKind::Transient, "BASE_BACKUP: the server sent no backup_manifest");
  verify_server_manifest(s.server_manifest, receiver.received_files());
  m.server_manifest_verified = true;
  if (m.backup_label.empty()) throw Error(ErrorKind::Transient, "BASE_BACKUP: no backup_label in the stream");
  for (const auto& [oid, target] : receiver.tablespace_links()) {
    bool known = std::any_of(m.tablespaces.begin(), m.tablespaces.end(), [&](const auto& t) { return t.oid == oid; });
    if (!known) spdlog::warn("pg_tblspc/{} -> {} is not in the server's tablespace list", oid, target);
  }
}

// Whether what the run relies on is still its own, right before the commit: the create-if-absent checks
// a store without conditional writes deferred (PutOptions::confirm_later: the claim's and the bundles',
// each after its own settle time, mostly over by now; the lock's runs in its check() unless a refresh
// ran it), then the repository lock and the label's claim as stored now. Another writer's object under
// one of those keys fails it with Conflict.
void check_still_own(BackupRun& run) {
  try {
    run.creates.run();
    run.lock.check();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Duplicate && e.kind() != ErrorKind::Conflict) throw;
    throw Error(ErrorKind::Conflict, "backup " + run.m.label + " in " + run.repo.describe() + ": " + e.what() + "; not committing");
  }
  if (!claim_holds(run.repo.storage(), run.claim)) {
    throw Error(ErrorKind::Conflict, "backup " + run.m.label + ": another base-push took over the label's claim " +
                                         run.repo.describe() + "/" + keys::backup_claim(run.m.label) + "; not committing");
  }
}

// manifest.json, the commit point, once check_still_own() passed.
void commit(BackupRun& run) {
  BackupManifest& m = run.m;
  check_still_own(run);
  m.stop_time = now_iso8601();
  for (const auto& f : m.files) m.total_bytes += f.size;
  for (const auto& b : m.bundles) m.stored_bytes += b.stored_size;
  if (run.opts.marks) {
    BackupMarks marks = *run.opts.marks;
    marks.label = m.label;
    marks.time = m.stop_time;
    run.own_keys.push_back(keys::backup_marks(m.label));
    write_marks(run.repo, marks);
  }
  run.manifest_attempted = true;
  write_manifest(run.repo, m);
}

// The server's backup_manifest as it was received: what a later server-side incremental uploads.
void store_server_manifest(BackupRun& run, const std::string& text) {
  const std::string key = keys::backup_server_manifest(run.m.label);
  run.own_keys.push_back(key);
  run.repo.put_bytes(key, as_bytes(text));
}

// The data in, checked and the server's manifest stored. The receiver's record of every file and the
// server's manifest text end here, not held through the wait and the commit (at tens of thousands of
// files each is MiBs next to the manifest's entries).
void receive_and_check(BackupRun& run, ReplicationConnection& conn, BundleUploader& uploader) {
  TarReceiver receiver(run.m, uploader, run.opts.bundle_size, run.plan ? &run.plan->base : nullptr);
  StreamedBackup s = receive_backup(run, conn, uploader, receiver);
  check_received(run.m, s, receiver);
  store_server_manifest(run, s.server_manifest);
}

void take_backup(BackupRun& run, ReplicationConnection& conn, BundleUploader& uploader) {
  receive_and_check(run, conn, uploader);
  if (run.plan) run.plan->base.parent_files = ParentFiles();  // client mode: all files are in
  // The stop segment must be archived before the backup is usable.
  wait_for_segment(run.repo, run.m.stop_wal, run.opts.archive_timeout, run.progress);
  commit(run);
}

}  // namespace

BackupResult run_base_backup(Repository& repo, const BackupOptions& opts) {
  check_options(opts);
  check_interrupt();
  const auto t0 = Clock::now();
  BackupResult result;
  Progress progress(opts.progress, "");
  DeferredConfirms creates;  // checked in commit(): the settle times pass while the backup runs
  // One base-push at a time per repository: a second one fails (Conflict, exit 3) naming the holder.
  // Its create-if-absent check waits for the commit too (RepositoryLock::check, or its first refresh).
  RepositoryLock lock = RepositoryLock::acquire(
      repo.storage(), "base-push",
      {.tool = "base-push", .stale_after = 3600, .now = std::time(nullptr), .check_create_later = true});
  lock.keep_fresh(std::chrono::minutes(20));

  ReplicationConnection conn(opts.conninfo, check_interrupt);
  const ServerFacts server = check_server(conn);
  result.server_version = server.version_text;
  check_repository_identity(repo, server);
  BundleUploaderOptions uo = backup_uploader_options(repo, opts);
  uo.confirm_later = &creates;
  std::optional<IncrementalPlan> plan;
  if (opts.type != "full") plan = plan_incremental(repo, conn, server, opts.no_fallback, opts.type == "diff");

  ClaimOptions claim_options = base_push_claim_options(repo.storage());
  claim_options.incremental = plan.has_value();
  claim_options.confirm_later = &creates;
  const BackupClaim claim = claim_backup_label(repo.storage(), claim_options);
  sweep_killed_runs(repo.storage(), kSweptBackupDirs);
  BackupRun run{repo, opts, server, claim, result.manifest, progress, plan ? &*plan : nullptr, false, {}, lock, creates};
  begin_manifest(run);
  spdlog::info("base backup {} of database system {} (PostgreSQL {}, {}) into {}", claim.label,
               server.system.system_identifier, server.version_text, conn.describe(), repo.describe());

  BundleUploader uploader(repo.storage(), claim.label, uo, check_interrupt);
  try {
    take_backup(run, conn, uploader);
    progress.clear();
  } catch (...) {
    progress.clear();
    conn.abort();
    uploader.abort();
    std::vector<std::string> own = uploader.written_keys();
    own.insert(own.end(), run.own_keys.begin(), run.own_keys.end());
    abandon_backup(repo.storage(), claim, own, run.manifest_attempted);
    throw;
  }
  lock.release();
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

BackupOptions backup_options_from_config(const Config& config) {
  BackupOptions o;
  o.conninfo = config.backup.conninfo;
  o.checkpoint = config.backup.checkpoint;
  o.parallel = config.backup.parallel;
  o.bundle_size = config.backup.bundle_size;
  return o;
}

std::string backup_summary_line(const BackupResult& r) {
  const auto& m = r.manifest;
  double rate = r.seconds > 0 ? m.total_bytes / r.seconds : 0;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.0f%%", m.total_bytes ? 100.0 * m.stored_bytes / m.total_bytes : 0.0);
  const std::string parent = m.type == "incremental" ? " (incremental on " + m.parent + ", " + m.incremental_mode + " mode)" : "";
  return "backup " + m.label + parent + " complete: " + human_bytes(static_cast<double>(m.total_bytes)) + " in " +
         std::to_string(m.files.size()) + " files, stored " + human_bytes(static_cast<double>(m.stored_bytes)) + " (" +
         pct + ") in " + std::to_string(m.bundles.size()) + " bundles, " + human_duration(r.seconds) + " (" +
         human_bytes(rate) + "/s), WAL " + m.start_wal + " to " + m.stop_wal;
}

std::string backup_summary_json(const BackupResult& r) {
  const auto& m = r.manifest;
  json j = {
      {"label", m.label},
      {"type", m.type},
      {"parent", m.parent},
      {"incremental_mode", m.incremental_mode},
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
