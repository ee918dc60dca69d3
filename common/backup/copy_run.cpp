// backup-copy's run (copy.h): the identities, the plan, and the steps: the objects before a manifest
// copied by [backup] parallel workers at once (taken in plan order), then that manifest, alone, once
// every one of them is in the destination.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "common/backup/backup.h"
#include "common/backup/copy.h"
#include "common/backup/copy_object.h"
#include "common/backup/interrupt.h"
#include "common/base/errors.h"
#include "common/base/progress.h"
#include "common/base/threads.h"
#include "common/repo/backups.h"
#include "common/repo/layout.h"

namespace pgvault {

namespace {

using Kind = CopyStep::Kind;

// Both repositories exist; the destination's identity is the source's (created when absent).
Identity check_identities(Repository& src, Repository& dst) {
  src.require_initialised();
  dst.require_initialised();
  std::optional<Identity> id = src.identity();
  if (!id) throw Error(ErrorKind::NotFound, src.describe() + ": nothing was ever pushed there: no backup to copy");
  Identity stored = dst.ensure_identity(*id);  // Foreign when it holds another database system
  (void)stored;
  return *id;
}

// The source's WAL index keys and the labels whose folder holds the server's backup_manifest.
std::set<std::string> list_wal_indexes(Repository& src) {
  std::set<std::string> keys;
  for (const auto& o : src.storage().list(keys::wal_index_prefix())) keys.insert(o.key);
  return keys;
}
std::set<std::string> list_server_manifests(Repository& src) {
  std::set<std::string> labels;
  for (const auto& o : src.storage().list(keys::backups_prefix())) {
    auto b = keys::parse_backup_key(o.key);
    if (b && o.key == keys::backup_server_manifest(b->label)) labels.insert(b->label);
  }
  return labels;
}

// The labels of `src_inv`'s backups that are incomplete backups at the destination other than an
// interrupted copy of the same backup (copy.h's CopyBlocked).
CopyBlocked blocked_labels(Repository& dst, const Inventory& src_inv, const Inventory& dst_inv) {
  CopyBlocked blocked;
  for (const auto& inc : dst_inv.incomplete) {
    const BackupManifest* b = src_inv.find_backup(inc.label);
    if (!b) continue;
    if (!inc.error.empty()) {
      blocked[inc.label] = "the destination holds a backup under this label whose manifest cannot be read (" + inc.error + ")";
      continue;
    }
    auto claim = read_label_claim(dst.storage(), inc.label);
    if (claim && !claim->copies(*b)) {
      blocked[inc.label] = "the destination holds an incomplete backup under this label with " + claim->describe() +
                           ": a base-push still running or interrupted (retention-prune removes it after "
                           "[retention] incomplete_grace)";
    }
  }
  return blocked;
}

struct Runner {
  Repository& src;
  Repository& dst;
  const Identity& id;
  CopyDestination to;
  CopyResult& result;
  const Inventory& src_inv;
  // The whole manifest of the backup being copied (the inventory holds heads): read before its objects
  // and dropped after its manifest is written, so one backup's file entries are held at a time.
  // Changed only by the owning thread while no worker runs.
  std::map<std::string, BackupManifest> manifests;
  std::map<std::string, BackupClaim> claims;        // each backup's label at the destination (owning thread)
  std::mutex mu;                                    // result's counters

  Runner(Repository& s, Repository& d, const Identity& i, const Inventory& inv, CopyResult& r)
      : src(s), dst(d), id(i), to(copy_destination(s, d)), result(r), src_inv(inv) {
    dst.read_key();  // claim_of() from the workers
  }

  // Before the objects of backup `label` (its steps end with its manifest: copy_plan.cpp) / after.
  void read_manifest(const std::string& label) {
    const BackupManifest* b = src_inv.find_backup(label);
    if (!b) throw Error(ErrorKind::Internal, "backup-copy: backup " + label + " is not in the source's inventory");
    manifests.insert_or_assign(label, with_files(src, *b));
  }
  void drop_manifest(const std::string& label) { manifests.erase(label); }

  const BackupManifest& manifest(const std::string& label) {
    auto it = manifests.find(label);
    if (it != manifests.end()) return it->second;
    throw Error(ErrorKind::Internal, "backup-copy: the manifest of backup " + label + " was not read before its objects");
  }

  ObjectToCopy object(const CopyStep& s) {
    ObjectToCopy o;
    o.key = s.key;
    if (s.kind == Kind::Wal) o.segment = WalFileName::parse(s.key.substr(s.key.rfind('/') + 1));
    if (s.kind == Kind::Bundle) {
      const BackupManifest& m = manifest(s.label);
      o.backup = &m;
      o.bundle = std::stoull(s.key.substr(s.key.rfind('-') + 1));
      o.bundle_files = files_in_bundle(m, o.bundle);
    }
    return o;
  }

  // A WAL or history object the destination holds: the same content, or a Duplicate error.
  void compare_present(const CopyStep& s) {
    Digest plain = verify_object(src, object(s), id);
    Digest stored = dst.stored_digest(s.key);
    if (stored != dst.claim_of(s.key, plain, stored.keyed)) {
      throw Error(ErrorKind::Duplicate, dst.describe() + "/" + s.key + " holds other content (" + stored.describe() +
                                            ") than " + src.describe() + "/" + s.key + " (" + plain.describe() + ")");
    }
    std::lock_guard lock(mu);
    ++result.wal_present;
  }

  // The label of backup `label` at the destination, claimed before any of its objects is written there.
  void claim(const std::string& label) {
    claims[label] = claim_label_for_copy(dst.storage(), manifest(label), claim_settle(dst.storage()));
  }

  // The manifest: read verified at the source, its bundles' stored sizes set to the destination's;
  // written only while the label's claim is still this run's.
  void write_manifest_last(const CopyStep& s) {
    BackupManifest m = manifest(s.label);
    auto c = claims.find(s.label);
    if (c == claims.end() || !claim_holds(dst.storage(), c->second)) {
      throw Error(ErrorKind::Conflict, dst.describe() + ": the claim of backup label " + s.label +
                                           " was taken by another run before its manifest; the copy is not committed");
    }
    std::uint64_t stored = 0;
    for (auto& mb : m.bundles) {
      auto info = dst.storage().head(keys::backup_bundle(m.label, mb.index));
      if (!info) throw Error(ErrorKind::NotFound, dst.describe() + ": bundle " + std::to_string(mb.index) +
                                                       " of backup " + m.label + " vanished before its manifest");
      mb.stored_size = info->size;
      stored += info->size;
    }
    m.stored_bytes = stored;
    write_manifest(dst, m);
  }

  // Thread-safe but for a manifest (the owning thread, no worker running).
  void step(const CopyStep& s) {
    if (s.at_destination) return compare_present(s);
    std::uint64_t bytes = 0;
    if (s.kind == Kind::Manifest) {
      write_manifest_last(s);
    } else {
      bytes = copy_object(src, to, object(s), id).size;
    }
    std::lock_guard lock(mu);
    result.bytes += bytes;
    ++result.objects;
  }
};

// How many objects are copied at once: [backup] parallel (0: the number of cores).
std::size_t copy_workers(const Config& config) {
  const int n = config.backup.parallel > 0 ? config.backup.parallel : static_cast<int>(std::thread::hardware_concurrency());
  return static_cast<std::size_t>(std::max(1, n));
}

// The steps [first, last) (no manifest among them) by `workers` threads, each taking the next step in
// plan order. The first failure stops every worker from taking another step and is thrown once all
// have ended. `done` runs after each step, one call at a time.
void copy_batch(Runner& run, const std::vector<CopyStep>& steps, std::size_t first, std::size_t last,
                std::size_t workers, const std::function<void(const CopyStep&)>& done) {
  std::mutex mu;
  std::size_t next = first;
  std::exception_ptr error;
  auto work = [&] {
    for (;;) {
      std::size_t i;
      {
        std::lock_guard lock(mu);
        if (error || next == last) return;
        i = next++;
      }
      try {
        check_interrupt();
        run.step(steps[i]);
        std::lock_guard lock(mu);
        if (!error) done(steps[i]);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
      }
    }
  };
  {
    ThreadGroup group([&] {
      std::lock_guard lock(mu);
      next = last;  // a thread that cannot start: the started ones take no new step
    });
    group.start_n(std::min(workers, last - first) - 1, work);
    work();  // this thread is a worker too
  }
  if (error) std::rethrow_exception(error);
}

std::uint64_t total_stored(const CopyPlan& plan) {
  std::uint64_t total = 0;
  for (const auto& s : plan.steps) total += s.stored_size;
  return total;
}

}  // namespace

CopyResult run_backup_copy(Repository& src, Repository& dst, const CopyOptions& opts) {
  const auto start = std::chrono::steady_clock::now();
  CopyResult result;
  result.from = src.describe();
  result.to = dst.describe();
  Identity id = check_identities(src, dst);
  src.read_key();  // loaded and verified here, before the reader threads share the repository
  Inventory src_inv = load_inventory(src);
  Inventory dst_inv = load_inventory(dst);
  result.plan = plan_backup_copy(src_inv, dst_inv, opts.label, list_wal_indexes(src), list_server_manifests(src),
                                 blocked_labels(dst, src_inv, dst_inv));
  Progress progress(opts.progress, "backup-copy");
  progress.set_total(total_stored(result.plan));
  Runner run(src, dst, id, src_inv, result);
  const std::size_t workers = copy_workers(dst.config());
  auto done = [&](const CopyStep& s) {  // one call at a time
    progress.set_phase(copy_step_kind_name(s.kind) + " " + s.key);
    progress.add(s.stored_size);
    progress.tick();
    if (s.kind == Kind::Manifest) spdlog::info("backup {} copied to {}", s.label, result.to);
    if (opts.after_step) opts.after_step(s);
  };
  const auto& steps = result.plan.steps;
  std::size_t first = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].kind != Kind::Manifest) continue;
    run.read_manifest(steps[i].label);
    run.claim(steps[i].label);
    if (first < i) copy_batch(run, steps, first, i, workers, done);
    check_interrupt();
    run.step(steps[i]);  // the commit point: every object before it is in the destination
    done(steps[i]);
    run.drop_manifest(steps[i].label);
    first = i + 1;
  }
  if (first < steps.size()) copy_batch(run, steps, first, steps.size(), workers, done);
  progress.clear();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::function<void(const CopyStep&)> copy_test_hook() {
  const char* v = std::getenv("PGVAULT_TEST_COPY_CRASH_AFTER");
  if (!v || !*v) return {};
  char* end = nullptr;
  const long after = std::strtol(v, &end, 10);
  const std::string kind = *end ? v : "";  // a step kind ("bundle"), else a count
  return [after, kind, count = 0L](const CopyStep& s) mutable {
    if (kind.empty() ? ++count >= after : copy_step_kind_name(s.kind) == kind) {
      std::fflush(nullptr);
      ::_exit(9);
    }
  };
}

}  // namespace pgvault
