// retention: scanning for tombstones and temporary files, and carrying out a plan (see retention.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/repo/backups.h"
#include "common/repo/layout.h"
#include "common/retention/retention.h"

namespace pgvault {

namespace {

// Calls opts.check (which throws when the run must stop, e.g. its lock was lost).
void check(const RetentionExecOptions& opts) {
  if (opts.check) opts.check();
}

void remove_batched(Storage& st, const std::vector<std::string>& keys, const RetentionExecOptions& opts,
                    const std::function<void()>& after_batch = {}) {
  std::size_t b = std::max<std::size_t>(opts.batch, 1);
  for (std::size_t i = 0; i < keys.size(); i += b) {
    std::vector<std::string> part(keys.begin() + static_cast<std::ptrdiff_t>(i),
                                  keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), i + b)));
    check(opts);
    st.remove_many(part);
    if (after_batch) after_batch();
  }
}

// Deletes every object of a backup directory, the tombstone last. Returns the bytes freed.
std::uint64_t remove_backup_objects(Storage& st, const std::string& label, const RetentionExecOptions& opts) {
  const std::string tomb = keys::backup_tombstone(label);
  std::vector<std::string> keys;
  std::uint64_t bytes = 0;
  bool has_tomb = false;
  for (const auto& o : st.list(keys::backup_prefix(label))) {
    if (o.key == tomb) {
      has_tomb = true;
      continue;
    }
    keys.push_back(o.key);
    bytes += o.size;
  }
  remove_batched(st, keys, opts);
  if (has_tomb) {
    check(opts);
    st.remove(tomb);
  }
  return bytes;
}

void hook(const RetentionExecOptions& opts, std::string_view step) {
  if (opts.hook) opts.hook(step);
}

// A complete backup: tombstone, manifest (the commit point, so the backup vanishes from every tool at
// once), then the rest. Returns the bytes freed.
std::uint64_t delete_backup(Storage& st, const BackupDecision& d, const RetentionExecOptions& opts) {
  const std::string manifest = keys::backup_manifest(d.label);
  std::string tomb = "{\"deleted_by\": \"retention-prune\", \"time\": \"" + now_iso8601() + "\"}\n";
  check(opts);
  write_all(st, keys::backup_tombstone(d.label), as_bytes(tomb));
  std::uint64_t manifest_size = 0;
  if (auto info = st.head(manifest)) manifest_size = info->size;
  st.remove(manifest);
  spdlog::info("deleted backup {} ({}): manifest removed", d.label, d.rule);
  hook(opts, "manifest-delete");
  const std::uint64_t freed = manifest_size + remove_backup_objects(st, d.label, opts);
  hook(opts, "bundles-delete");
  st.remove_empty_folder(keys::backup_prefix(d.label));
  return freed;
}

// WAL keys by segment position (the file name minus the timeline), then by timeline: oldest first.
void sort_by_position(std::vector<std::string>& wal_keys) {
  std::sort(wal_keys.begin(), wal_keys.end(), [](const std::string& a, const std::string& b) {
    auto base = [](const std::string& k) { return k.substr(k.rfind('/') + 1); };
    std::string ba = base(a), bb = base(b);
    std::string pa = ba.size() >= 24 ? ba.substr(8, 16) : ba, pb = bb.size() >= 24 ? bb.substr(8, 16) : bb;
    return pa != pb ? pa < pb : ba < bb;
  });
}

// The deleted WAL ranges, oldest first, in batches (order within the delete set does not matter for
// readers, since nothing kept needs any of it), then their emptied folders.
void delete_wal(Storage& st, const RetentionPlan& plan, const RetentionExecOptions& opts, RetentionResult& r) {
  std::vector<std::string> wal_keys;
  for (const auto& w : plan.wal) {
    if (w.action != RetentionAction::Delete) continue;
    wal_keys.insert(wal_keys.end(), w.keys.begin(), w.keys.end());
    r.bytes_freed += w.stored_bytes;
  }
  sort_by_position(wal_keys);
  std::set<std::string> folders;
  for (const auto& k : wal_keys) folders.insert(keys::folder_of(k));
  std::size_t done = 0;
  remove_batched(st, wal_keys, opts, [&] {
    done = std::min(wal_keys.size(), done + std::max<std::size_t>(opts.batch, 1));
    r.wal_files_deleted = done;
    hook(opts, "wal-delete");
  });
  r.wal_files_deleted = wal_keys.size();
  for (const auto& f : folders) st.remove_empty_folder(f);
}

// The WAL index objects (keys::wal_index) of the segments below the cutoff, whether or not their
// segment was listed: those of the segments just deleted, and those a run interrupted after deleting
// segments left behind. Indexes at or above the cutoff stay, whatever the listing showed: wal-push
// writes a segment's index after the segment, so an index whose segment a listing missed is no orphan.
void delete_wal_indexes(Repository& repo, const RetentionPlan& plan, const RetentionExecOptions& opts) {
  const std::optional<Identity> identity = repo.identity();
  if (!plan.wal_cutoff_segno || !identity) return;
  Storage& st = repo.storage();
  std::vector<std::string> doomed;
  std::set<std::string> folders;
  for (const auto& o : st.list(keys::wal_index_prefix())) {
    auto name = keys::parse_wal_index_key(o.key);
    if (!name || segment_number(name->log, name->seg, identity->wal_segment_size) >= *plan.wal_cutoff_segno) continue;
    doomed.push_back(o.key);
    folders.insert(keys::folder_of(o.key));
  }
  remove_batched(st, doomed, opts);
  for (const auto& f : folders) st.remove_empty_folder(f);
  if (!doomed.empty()) spdlog::info("deleted the WAL index of {} segments before {}", doomed.size(), plan.wal_cutoff);
}

// Leftover temporary files (only a backend with files has any: see Storage::list_temporaries).
void delete_temporaries(Storage& st, const RetentionPlan& plan, const RetentionExecOptions& opts,
                        RetentionResult& r) {
  for (const auto& t : plan.temporaries) {
    if (t.action != RetentionAction::Delete) continue;
    check(opts);
    st.remove_temporary(t.path);
    r.temporaries_deleted++;
    r.bytes_freed += t.size;
  }
}

}  // namespace

RetentionExtras scan_retention_extras(Repository& repo) {
  RetentionExtras x;
  for (const auto& f : list_backup_folders(repo.storage())) {
    if (f.has_tombstone) x.tombstones.insert(f.label);
  }
  x.temporaries = repo.storage().list_temporaries();
  return x;
}

RetentionResult execute_retention(Repository& repo, const RetentionPlan& plan, const RetentionExecOptions& opts) {
  RetentionResult r;
  Storage& st = repo.storage();
  for (const auto& d : plan.backups) {  // oldest first
    if (d.action != RetentionAction::Delete) continue;
    r.bytes_freed += delete_backup(st, d, opts);
    r.backups_deleted++;
  }
  for (const auto& d : plan.incomplete) {
    if (d.action != RetentionAction::Delete) continue;
    r.bytes_freed += remove_backup_objects(st, d.label, opts);
    st.remove_empty_folder(keys::backup_prefix(d.label));
    spdlog::info("deleted incomplete backup {} ({})", d.label, d.rule);
    r.incomplete_deleted++;
  }
  delete_wal(st, plan, opts, r);
  delete_wal_indexes(repo, plan, opts);
  delete_temporaries(st, plan, opts, r);
  return r;
}

}  // namespace pgvault
