// backup-copy's run (copy.h): the identities, the plan, and the steps in order, the manifest of each
// backup last.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "common/backup/copy.h"
#include "common/backup/copy_object.h"
#include "common/backup/interrupt.h"
#include "common/base/errors.h"
#include "common/base/progress.h"
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

struct Runner {
  Repository& src;
  Repository& dst;
  const Identity& id;
  const Inventory& src_inv;
  CopyResult& result;
  std::map<std::string, BackupManifest> manifests;  // copied manifests, stored sizes of the destination

  const BackupManifest& manifest(const std::string& label) {
    auto it = manifests.find(label);
    if (it != manifests.end()) return it->second;
    for (const auto& b : src_inv.backups) {
      if (b.label == label) return manifests.emplace(label, b).first->second;
    }
    throw Error(ErrorKind::Internal, "backup-copy: backup " + label + " is not in the plan");
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
    ++result.wal_present;
  }

  // The manifest: read verified at the source, its bundles' stored sizes set to the destination's.
  void write_manifest_last(const CopyStep& s) {
    BackupManifest m = manifest(s.label);
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

  void step(const CopyStep& s) {
    if (s.at_destination) return compare_present(s);
    if (s.kind == Kind::Manifest) {
      write_manifest_last(s);
    } else {
      Digest d = copy_object(src, dst, object(s), id);
      result.bytes += d.size;
    }
    ++result.objects;
  }
};

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
  result.plan = plan_backup_copy(src_inv, dst_inv, opts.label, list_wal_indexes(src), list_server_manifests(src));
  Progress progress(opts.progress, "backup-copy");
  progress.set_total(total_stored(result.plan));
  Runner run{src, dst, id, src_inv, result, {}};
  for (const auto& s : result.plan.steps) {
    check_interrupt();
    progress.set_phase(copy_step_kind_name(s.kind) + " " + s.key);
    run.step(s);
    progress.add(s.stored_size);
    progress.tick();
    if (s.kind == Kind::Manifest) spdlog::info("backup {} copied to {}", s.label, result.to);
    if (opts.after_step) opts.after_step(s);
  }
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
