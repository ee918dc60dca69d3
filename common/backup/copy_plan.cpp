// backup-copy's plan (copy.h): which backups, in which order, and every object each one needs.
#include <algorithm>

#include "common/backup/copy.h"
#include "common/base/errors.h"
#include "common/pg/wal.h"
#include "common/repo/chain.h"
#include "common/repo/layout.h"

namespace pgvault {

namespace {

using Kind = CopyStep::Kind;

// The same backup: the manifests' heads alike but the stored sizes, which are each repository's, and as
// many file entries. The inventories hold heads only (inventory.h); the head lists every bundle with the
// SHA-256 of its plaintext, which holds every stored file's bytes. Where and how many first (cheap; most
// colliding labels differ there), then the whole head.
bool same_backup(const BackupManifest& x, const BackupManifest& y) {
  if (x.start_lsn != y.start_lsn || x.stop_lsn != y.stop_lsn || x.timeline != y.timeline ||
      x.file_count() != y.file_count() || x.bundles.size() != y.bundles.size()) {
    return false;
  }
  BackupManifest a = x, b = y;
  for (auto* m : {&a, &b}) {
    m->stored_bytes = 0;
    for (auto& mb : m->bundles) mb.stored_size = 0;
  }
  return a.head_json() == b.head_json();
}

std::string describe_backup(const BackupManifest& b) {
  return "started at " + format_lsn(b.start_lsn) + " on timeline " + std::to_string(b.timeline) + ", stopped at " +
         format_lsn(b.stop_lsn) + ", " + std::to_string(b.file_count()) + " files";
}

// How the destination holds `b`'s label: the same backup (present), free, or `problem`: why the copy
// cannot be written under it.
struct AtDestination {
  bool present = false;
  std::string problem;
};
AtDestination at_destination(const Inventory& dst, const CopyBlocked& blocked, const BackupManifest& b) {
  if (const BackupManifest* d = dst.find_backup(b.label)) {
    if (same_backup(*d, b)) return {true, ""};
    return {false, "the destination holds another backup under this label (" + describe_backup(*d) +
                       "; the source's " + describe_backup(b) + ")"};
  }
  auto it = blocked.find(b.label);
  return {false, it == blocked.end() ? "" : it->second};
}

// The backups to copy for `wanted` (a complete backup of src): its chain's members dst lacks, oldest
// (the full backup) first. Members dst holds already go to `present`. Nothing is added when a member's
// label is taken at the destination: the reason is returned ("" when the chain was added).
std::string add_with_chain(const Inventory& src, const Inventory& dst, const CopyBlocked& blocked,
                           const BackupManifest& wanted, CopyPlan& plan) {
  BackupChain chain = resolve_chain(src, wanted);
  if (!chain.complete()) {
    throw Error(chain.problem_kind, "backup " + wanted.label + " cannot be copied: " + chain.problem);
  }
  std::vector<AtDestination> at;
  for (const BackupManifest* m : chain.members) {
    at.push_back(at_destination(dst, blocked, *m));
    if (at.back().problem.empty()) continue;
    return m->label == wanted.label ? at.back().problem : "its chain's backup " + m->label + ": " + at.back().problem;
  }
  for (std::size_t i = chain.members.size(); i-- > 0;) {
    const std::string& label = chain.members[i]->label;
    auto& list = at[i].present ? plan.present : plan.labels;
    if (std::find(list.begin(), list.end(), label) == list.end()) list.push_back(label);
  }
  return "";
}

// The timeline recovery reads segment `segno` from: the newest step beginning at or before it.
std::uint32_t timeline_of(const std::vector<ChainStep>& chain, std::uint64_t segno) {
  std::uint32_t tli = chain.front().timeline;
  for (const auto& step : chain) {
    if (step.begin_segno <= segno) tli = step.timeline;
  }
  return tli;
}

void add_wal_step(Kind kind, const std::string& key, const std::string& label, std::uint64_t size, bool at_dst,
                  CopyPlan& plan, std::set<std::string>& seen) {
  if (!seen.insert(key).second) return;  // a WAL object shared by two backups is copied once
  plan.steps.push_back({kind, key, label, size, at_dst});
}

// The history files of the timelines recovery from `b` reads, then every segment from its start to its
// stop segment with its WAL index where the source has one.
void add_wal_steps(const Inventory& src, const Inventory& dst, const BackupManifest& b,
                   const std::set<std::string>& src_wal_indexes, CopyPlan& plan, std::set<std::string>& seen) {
  std::vector<ChainStep> chain = timeline_chain(src, b.timeline, b.start_lsn, b.timeline);
  WalCheck check = check_wal_path(src, chain, b.start_lsn, b.stop_lsn, b.stop_lsn);
  if (!check.ok()) {
    throw Error(ErrorKind::NotFound, "backup " + b.label + " cannot be copied: the source lacks WAL file " +
                                         *check.missing + " (" + *check.missing_key + ")");
  }
  for (const auto& step : chain) {
    auto h = src.histories.find(step.timeline);
    if (h == src.histories.end()) continue;
    add_wal_step(Kind::History, h->second.key, b.label, 0, dst.has_history(step.timeline), plan, seen);
  }
  for (std::uint64_t s = check.first_segno; s <= check.last_segno; ++s) {
    const std::uint32_t tli = timeline_of(chain, s);
    const WalObject* seg = src.find_segment(tli, s);
    if (!seg) throw Error(ErrorKind::Internal, "backup-copy: segment " + std::to_string(s) + " vanished from the plan");
    add_wal_step(Kind::Wal, seg->key, b.label, seg->stored_size, dst.find_segment(tli, s) != nullptr, plan, seen);
    auto name = WalFileName::parse(seg->name);
    if (name && src_wal_indexes.count(keys::wal_index(*name))) {
      add_wal_step(Kind::WalIndex, keys::wal_index(*name), b.label, 0, false, plan, seen);
    }
  }
}

// The backup's own objects: bundles, the server's backup_manifest, its marks (kept, annotations: before
// the manifest, as base-push writes them, so a kept backup is never visible unkept), and the manifest last.
void add_backup_steps(const BackupManifest& b, bool server_manifest, bool marks, CopyPlan& plan) {
  for (const auto& mb : b.bundles) {
    plan.steps.push_back({Kind::Bundle, keys::backup_bundle(b.label, mb.index), b.label, mb.stored_size, false});
  }
  if (server_manifest) plan.steps.push_back({Kind::ServerManifest, keys::backup_server_manifest(b.label), b.label, 0, false});
  if (marks) plan.steps.push_back({Kind::Marks, keys::backup_marks(b.label), b.label, 0, false});
  plan.steps.push_back({Kind::Manifest, keys::backup_manifest(b.label), b.label, 0, false});
}

}  // namespace

std::string copy_step_kind_name(CopyStep::Kind k) {
  switch (k) {
    case Kind::History: return "history";
    case Kind::Wal: return "wal";
    case Kind::WalIndex: return "wal-index";
    case Kind::Bundle: return "bundle";
    case Kind::ServerManifest: return "server-manifest";
    case Kind::Marks: return "marks";
    case Kind::Manifest: return "manifest";
  }
  return "?";
}

CopyPlan plan_backup_copy(const Inventory& src, const Inventory& dst, const std::optional<std::string>& label,
                          const std::set<std::string>& src_wal_indexes, const std::set<std::string>& server_manifests,
                          const CopyBlocked& blocked) {
  CopyPlan plan;
  if (label) {
    const BackupManifest* b = src.find_backup(*label);
    if (!b) throw Error(ErrorKind::NotFound, "backup " + *label + " is not a complete backup in the source repository");
    std::string problem = add_with_chain(src, dst, blocked, *b, plan);
    if (!problem.empty()) throw Error(ErrorKind::Conflict, "backup " + *label + " cannot be copied: " + problem);
  } else {
    for (const auto& b : src.backups) {
      if (at_destination(dst, blocked, b).present) continue;
      std::string problem = add_with_chain(src, dst, blocked, b, plan);
      if (!problem.empty()) plan.conflicts.push_back({b.label, problem});
    }
  }
  // Oldest first by label (labels sort by start time; a parent starts before its child).
  std::sort(plan.labels.begin(), plan.labels.end());
  std::set<std::string> seen;
  for (const auto& l : plan.labels) {
    const BackupManifest& b = *src.find_backup(l);
    add_wal_steps(src, dst, b, src_wal_indexes, plan, seen);
    add_backup_steps(b, server_manifests.count(l) != 0, src.marks.count(l) != 0, plan);
  }
  return plan;
}

}  // namespace pgvault
