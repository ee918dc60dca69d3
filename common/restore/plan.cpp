// Planning (reads only): choose the backup, resolve the target timeline, check that the archive holds
// every WAL segment recovery will ask for, and map the tablespace locations.
#include <spdlog/spdlog.h>

#include <memory>
#include <set>
#include <sstream>

#include "common/base/errors.h"
#include "common/restore/restore_steps.h"
#include "common/restore/target_resolve.h"

namespace pgvault {

using namespace restore_detail;

namespace {

// The checkpoint the backup starts from ("CHECKPOINT LOCATION:" in backup_label); recovery begins there.
std::uint64_t checkpoint_lsn(const BackupManifest& b) {
  std::istringstream in(b.backup_label);
  std::string line;
  const std::string key = "CHECKPOINT LOCATION: ";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      try {
        return parse_lsn(line.substr(key.size()), "backup_label");
      } catch (const Error&) {
        break;
      }
    }
  }
  return b.start_lsn;
}

// A manifest that exists but cannot be used (corrupt, unsafe paths, wrong key) is never passed over
// silently: asked for by name, or when no other backup exists, its error is the answer.
void refuse_unreadable_or_none(Repository& repo, const Inventory& inv, const RestoreOptions& opts) {
  const IncompleteBackup* unreadable = nullptr;  // the newest one
  for (const auto& i : inv.incomplete) {
    if (!i.error.empty() && (opts.backup.empty() || i.label == opts.backup)) unreadable = &i;
  }
  if (unreadable && (inv.backups.empty() || !opts.backup.empty())) {
    throw Error(unreadable->error_kind, "backup " + unreadable->label + " cannot be restored: " + unreadable->error);
  }
  if (inv.backups.empty()) {
    throw Error(ErrorKind::NotFound, "repository " + repo.describe() + " holds no complete backup" +
                                         (inv.incomplete.empty() ? "" : " (only incomplete ones)"));
  }
  if (unreadable && opts.backup.empty() && unreadable->label > inv.backups.back().label) {
    spdlog::warn("backup {} is not considered: {}", unreadable->label, unreadable->error);
  }
}

const BackupManifest& named_backup(Repository& repo, const Inventory& inv, const std::string& label) {
  if (const BackupManifest* b = inv.find_backup(label)) return *b;
  const bool incomplete = inv.find_incomplete(label) != nullptr;
  throw Error(ErrorKind::NotFound, "backup " + label + (incomplete ? " is incomplete" : " does not exist") + " in " +
                                       repo.describe() + " (see archive-info)");
}

// The backups that may serve, newest first: the one named with --backup, or those that end before the
// target.
std::vector<const BackupManifest*> candidates(Repository& repo, const Inventory& inv, const RestoreOptions& opts) {
  if (!opts.backup.empty()) return {&named_backup(repo, inv, opts.backup)};
  const RecoveryTarget& t = opts.target;
  std::vector<const BackupManifest*> out;
  for (auto it = inv.backups.rbegin(); it != inv.backups.rend(); ++it) {
    if (t.kind == TargetKind::Time) {
      // stop_time has whole seconds (truncated): the backup surely ended before the target only when
      // its stop second plus one is not after it.
      double stop = static_cast<double>(parse_iso8601(it->stop_time)) + 1.0;
      if (stop > t.time) continue;
    } else if (t.kind == TargetKind::Lsn) {
      if (it->stop_lsn > t.lsn) continue;
    }
    out.push_back(&*it);
  }
  if (out.empty()) {
    const BackupManifest& oldest = inv.backups.front();
    throw Error(ErrorKind::NotFound, "no backup ends before the target " + describe_target(t) + " (the oldest, " +
                                         oldest.label + ", ended at " + oldest.stop_time + ", " +
                                         format_lsn(oldest.stop_lsn) + ")");
  }
  return out;
}

// Checks that the archive can feed the recovery of `b` along `chain`, up to `target_end` (the last byte of
// a resolved target's record) when given; a missing segment is NotFound.
WalCheck check_archive(Repository& repo, const Inventory& inv, const RestoreOptions& opts, const BackupManifest& b,
                       const std::vector<ChainStep>& chain, std::uint32_t tt, std::optional<std::uint64_t> target_end) {
  const RecoveryTarget& t = opts.target;
  if (t.kind == TargetKind::Lsn && t.lsn < b.stop_lsn) {
    throw Error(ErrorKind::InvalidInput, "target LSN " + format_lsn(t.lsn) + " lies before the end of backup " +
                                             b.label + " (" + format_lsn(b.stop_lsn) +
                                             "): recovery cannot stop before the backup is consistent");
  }
  std::optional<std::uint64_t> end;
  if (t.kind == TargetKind::Lsn) end = t.lsn;
  if (t.kind == TargetKind::Immediate) end = b.stop_lsn > 0 ? b.stop_lsn - 1 : 0;
  if (target_end) end = target_end;
  std::uint64_t min_end = b.stop_lsn > 0 ? b.stop_lsn - 1 : 0;  // the stop segment holds the byte before it
  WalCheck wal = check_wal_path(inv, chain, b.start_lsn, end, min_end);
  if (!wal.ok()) {
    std::string n = std::to_string(wal.missing_all.size());
    throw Error(ErrorKind::NotFound,
                "the archive is missing WAL segment " + *wal.missing + " (" + repo.describe() + "/" +
                    *wal.missing_key + "), needed to recover backup " + b.label + " to " + describe_target(t) +
                    " on timeline " + std::to_string(tt) + " (" + n + " segment" + (n == "1" ? "" : "s") +
                    " missing between " + segment_file_name(chain.front().timeline, wal.first_segno, inv.wal_segment_size) +
                    " and " + (end ? "the target" : "the end") + "); nothing was written");
  }
  return wal;
}

// oid -> the location to restore into: the backup's, or its --tablespace-map replacement. Every map entry
// must name one of the backup's tablespaces.
std::vector<std::pair<std::uint32_t, std::string>> tablespace_locations(const BackupManifest& b,
                                                                          const RestoreOptions& opts) {
  std::vector<std::pair<std::uint32_t, std::string>> out;
  std::set<std::string> used;
  for (const auto& ts : b.tablespaces) {
    std::string loc = strip_slashes(ts.location);
    for (const auto& [from, to] : opts.tablespace_map) {
      if (strip_slashes(from) == loc) {
        used.insert(from);
        loc = strip_slashes(to);
      }
    }
    if (loc.empty() || loc[0] != '/') {
      throw Error(ErrorKind::InvalidInput, "tablespace " + std::to_string(ts.oid) + ": location \"" + loc +
                                               "\" is not an absolute path");
    }
    out.emplace_back(ts.oid, loc);
  }
  for (const auto& [from, to] : opts.tablespace_map) {
    if (used.count(from)) continue;
    std::string have;
    for (const auto& ts : b.tablespaces) have += (have.empty() ? "" : ", ") + ts.location;
    throw Error(ErrorKind::InvalidInput, "--tablespace-map " + from + "=" + to + ": backup " + b.label +
                                             " has no tablespace at " + from +
                                             (have.empty() ? " (it has no tablespaces)" : " (it has: " + have + ")"));
  }
  return out;
}

// The state of one planning: the resolver of a time, xid or name target (nullptr for the others, and
// once a verdict left the target unresolved: then every backup is planned as before), and what the
// candidates passed over said.
struct Planning {
  std::unique_ptr<TargetResolver> resolver;
  std::optional<std::string> unresolved;  // why the target was not resolved in advance
  std::vector<std::string> passed_over;   // why each newer backup was passed over
  std::optional<std::string> before;      // the last "ends after the target's record"
  bool absent = false;                    // a candidate found no target record in the archive
};

// The resolver's verdict on `b`: fills `plan.resolved` and returns the last byte recovery reads for the
// target, or sets `refusal` (the backup ends after the target's record, or the target is not in the
// archive from its start on) and returns nullopt.
std::optional<std::uint64_t> judge_target(Planning& p, const RestoreOptions& opts, const BackupManifest& b,
                                          const std::vector<ChainStep>& chain, RestorePlan& plan, std::string& refusal) {
  if (!p.resolver) {
    if (p.unresolved) plan.resolved = ResolvedTarget{false, "", std::nullopt, *p.unresolved};
    return std::nullopt;
  }
  TargetVerdict v = p.resolver->judge(b, chain);
  switch (v.kind) {
    case TargetVerdict::Kind::Serves:
      plan.resolved = v.target;
      return v.end;
    case TargetVerdict::Kind::Before:
      if (!opts.backup.empty()) throw Error(ErrorKind::NotFound, "backup " + b.label + " cannot reach the target: " + v.why);
      spdlog::info("passing over {}", v.why);
      p.passed_over.push_back(v.why);
      p.before = v.why;
      refusal = v.why;
      return std::nullopt;
    case TargetVerdict::Kind::Absent:
      if (!opts.backup.empty()) throw Error(ErrorKind::NotFound, p.resolver->absent_message());
      spdlog::info("passing over backup {}: {}", b.label, v.why);
      p.passed_over.push_back(v.why);
      p.absent = true;
      refusal = v.why;
      return std::nullopt;
    case TargetVerdict::Kind::Unresolved:
      spdlog::warn("{}", v.why);
      p.unresolved = v.why;
      p.resolver.reset();
      plan.resolved = ResolvedTarget{false, "", std::nullopt, v.why};
      return std::nullopt;
  }
  return std::nullopt;
}

// How the backup was chosen, one line.
std::string why_chosen(const Planning& p, const RestoreOptions& opts, const RestorePlan& plan) {
  if (!opts.backup.empty()) return "chosen with --backup";
  if (!plan.resolved || !plan.resolved->resolved) {
    return "newest backup that ends before the target " + describe_target(opts.target) +
           (plan.resolved ? " (the target was not resolved in advance)" : "");
  }
  std::string why = "newest backup that ends before the target's " + plan.resolved->how;
  for (const auto& passed : p.passed_over) why += "; passed over: " + passed;
  return why;
}

// The plan for backup `b`, or nullopt with `refusal` set when `b` cannot serve but an older one may.
std::optional<RestorePlan> plan_for(Repository& repo, const Inventory& inv, const RestoreOptions& opts,
                                    std::optional<std::uint32_t> fixed_timeline, const BackupManifest& b,
                                    Planning& p, std::string& refusal) {
  // An incremental backup serves when its chain is complete (chain_plan.cpp).
  std::optional<std::vector<BackupManifest>> ancestors = restorable_chain(inv, b, !opts.backup.empty(), refusal);
  if (!ancestors) return std::nullopt;
  std::uint32_t tt = fixed_timeline                        ? *fixed_timeline
                     : opts.target_timeline == "current" ? b.timeline
                                                         : latest_timeline(inv, b.timeline);
  std::vector<ChainStep> chain;
  try {
    chain = timeline_chain(inv, b.timeline, checkpoint_lsn(b), tt);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::InvalidInput) throw;
    refusal = "backup " + b.label + ": " + e.what();
    return std::nullopt;  // this backup is not on the target timeline's history; an older one may be
  }
  RestorePlan plan;
  std::optional<std::uint64_t> target_end = judge_target(p, opts, b, chain, plan, refusal);
  if (!refusal.empty()) return std::nullopt;
  plan.target_timeline = tt;
  plan.wal = check_archive(repo, inv, opts, b, chain, tt, target_end);
  plan.why = why_chosen(p, opts, plan);
  plan.tablespaces = tablespace_locations(b, opts);
  // The inventory holds the manifests' heads: the file entries of the backups restored are read now.
  plan.backup = with_files(repo, b);
  for (const BackupManifest& m : *ancestors) plan.chain.push_back(with_files(repo, m));
  return plan;
}

}  // namespace

RestorePlan plan_restore(Repository& repo, const Inventory& inv, const RestoreOptions& opts, WalIndexSource& index) {
  std::optional<std::uint32_t> fixed_timeline = check_target_options(opts);
  refuse_unreadable_or_none(repo, inv, opts);
  Planning p;
  if (TargetResolver::applies(opts.target.kind)) {
    p.resolver = std::make_unique<TargetResolver>(inv, index, opts.target, opts.exclusive);
  }
  std::string first_refusal;
  for (const BackupManifest* b : candidates(repo, inv, opts)) {
    std::string refusal;
    std::optional<RestorePlan> plan = plan_for(repo, inv, opts, fixed_timeline, *b, p, refusal);
    if (plan) return std::move(*plan);
    if (first_refusal.empty()) first_refusal = refusal;
  }
  if (p.resolver && !p.before && p.absent) {
    throw Error(ErrorKind::NotFound, p.resolver->absent_message() + "; nothing was written");
  }
  if (p.resolver && p.before) {
    throw Error(ErrorKind::NotFound, "no backup ends before the target " + describe_target(opts.target) + ": " +
                                         *p.before + "; nothing was written");
  }
  throw Error(ErrorKind::InvalidInput, "no backup can reach the target " + describe_target(opts.target) +
                                           " on timeline " + opts.target_timeline + ": " + first_refusal);
}

RestorePlan plan_restore(Repository& repo, const Inventory& inv, const RestoreOptions& opts) {
  std::unique_ptr<WalIndexSource> index = repository_wal_index_source(repo, opts.parallel > 0 ? opts.parallel : repo.config().backup.parallel);
  return plan_restore(repo, inv, opts, *index);
}

}  // namespace pgvault
