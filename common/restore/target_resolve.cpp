// TargetResolver: the walk from a backup's start along its timeline chain to the record recovery stops
// at (the rules are in target_resolve.h).
#include "common/restore/target_resolve.h"

#include <algorithm>

#include "common/base/errors.h"
#include "common/restore/restore_steps.h"

namespace pgvault {

using namespace restore_detail;

namespace {

constexpr std::size_t kMaxFollowed = 8;  // segments a record left open at a segment's end is followed into
constexpr std::size_t kReadAhead = 16;   // indexes asked for ahead of the walk
constexpr std::size_t kNamesShown = 5;   // restore point names a refusal lists

std::uint32_t parse_xid(const std::string& text) {
  try {
    // recovery_target_xid may carry an epoch (a 64-bit xid); the WAL records hold its low 32 bits.
    return static_cast<std::uint32_t>(std::stoull(text, nullptr, 10));
  } catch (const std::exception&) {
    throw Error(ErrorKind::InvalidInput, "--target-xid must be a transaction id (digits), not \"" + text + "\"");
  }
}

// The chain step recovery reads segment `segno` from: the newest one that begins at or before it.
const ChainStep& step_of(const std::vector<ChainStep>& chain, std::uint64_t segno) {
  auto it = std::find_if(chain.rbegin(), chain.rend(), [&](const ChainStep& c) { return c.begin_segno <= segno; });
  return it == chain.rend() ? chain.front() : *it;
}

std::string not_resolved(const std::string& why) { return why + ": the target is not resolved in advance"; }

}  // namespace

// The replay of one candidate backup: where it begins and which step serves the current segment.
struct TargetResolver::Walk {
  const BackupManifest* backup = nullptr;
  std::uint64_t from = 0;  // replay begins here: records before it are not seen
  std::uint64_t first_segno = 0;
  std::uint64_t stop_segno = 0;
  const ChainStep* step = nullptr;
  bool sees(std::uint64_t lsn) const { return lsn >= from && lsn < step->end_lsn; }
};

// What a segment's index says: the target is in the segment, at `event` when the index knows it.
struct TargetResolver::Match {
  std::optional<WalEvent> event;
};

TargetResolver::TargetResolver(const Inventory& inv, WalIndexSource& source, const RecoveryTarget& target,
                               bool exclusive)
    : inv_(inv), source_(source), target_(target), exclusive_(exclusive) {
  if (target.kind == TargetKind::Time) target_time_ = unix_to_pg_timestamp(target.time);
  if (target.kind == TargetKind::Xid) target_xid_ = parse_xid(target.value);
}

bool TargetResolver::applies(TargetKind kind) {
  return kind == TargetKind::Time || kind == TargetKind::Xid || kind == TargetKind::Name;
}

bool TargetResolver::event_matches(const WalEvent& e) const {
  const bool xact = e.kind != WalEventKind::RestorePoint;
  switch (target_.kind) {
    case TargetKind::Name: return !xact && e.name == target_.value;
    case TargetKind::Time: return xact && (exclusive_ ? e.time >= target_time_ : e.time > target_time_);
    case TargetKind::Xid: return xact && e.xid == target_xid_;
    default: return false;
  }
}

std::optional<TargetResolver::Match> TargetResolver::index_match(const WalIndex& idx, const Walk& w) const {
  switch (target_.kind) {
    case TargetKind::Name:
      for (const auto& rp : idx.restore_points) {
        if (w.sees(rp.lsn) && event_matches(rp)) return Match{rp};
      }
      return std::nullopt;
    case TargetKind::Time:
      if (idx.max_time && (exclusive_ ? *idx.max_time >= target_time_ : *idx.max_time > target_time_)) return Match{};
      return std::nullopt;
    case TargetKind::Xid:
      if (idx.has_xid(target_xid_)) return Match{};
      return std::nullopt;
    default: return std::nullopt;
  }
}

std::optional<WalEvent> TargetResolver::first_matching(const std::vector<WalEvent>& events, const Walk& w) const {
  for (const auto& e : events) {
    if (w.sees(e.lsn) && event_matches(e)) return e;
  }
  return std::nullopt;
}

const WalObject* TargetResolver::served(const std::vector<ChainStep>& chain, std::uint64_t segno) const {
  return inv_.find_segment(step_of(chain, segno).timeline, segno);
}

const std::optional<WalIndex>& TargetResolver::cached_index(const WalObject& seg) {
  auto it = indexes_.find(seg.name);
  if (it != indexes_.end()) return it->second;
  std::optional<WalIndex> idx;
  try {
    idx = source_.index(seg);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Corruption) throw;
    problems_[seg.name] = e.what();
  }
  return indexes_.emplace(seg.name, std::move(idx)).first->second;
}

void TargetResolver::prefetch_from(const std::vector<ChainStep>& chain, std::uint64_t segno, std::uint64_t end_segno) {
  std::vector<const WalObject*> ahead;
  for (std::uint64_t s = segno; s < end_segno && ahead.size() < kReadAhead; ++s) {
    const WalObject* o = served(chain, s);
    if (!o) break;
    if (indexes_.count(o->name) || !asked_.insert(o->name).second) {
      if (s == segno) return;  // already read or asked for: the batch that holds it is on its way
      continue;
    }
    ahead.push_back(o);
  }
  if (ahead.size() > 1) source_.prefetch(ahead);
}

// The events of segment `segno` read from the segment itself, following a record left open at its end
// into the segments after it (as long as no record starts in them); the first one the target matches.
std::optional<WalEvent> TargetResolver::first_exact(const std::vector<ChainStep>& chain, std::uint64_t segno,
                                                    const Walk& w, std::string& problem) {
  auto cached = exact_.find(segno);
  if (cached == exact_.end() || cached->second.first != w.step->timeline) {
    std::vector<const WalObject*> segs{served(chain, segno)};
    for (std::uint64_t s = segno + 1; segs.size() < kMaxFollowed; ++s) {
      const WalObject* next = served(chain, s);
      if (!next) break;
      segs.push_back(next);
      const std::optional<WalIndex>& idx = cached_index(*next);
      if (!idx || idx->records > 0 || idx->open_record_lsn) break;  // the open record ends in `next`
    }
    try {
      cached = exact_.insert_or_assign(segno, std::make_pair(w.step->timeline, source_.events(segs, inv_.wal_segment_size))).first;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Corruption) throw;
      problem = not_resolved(std::string(e.what()));
      return std::nullopt;
    }
  }
  return first_matching(cached->second.second, w);
}

void TargetResolver::note(const WalIndex& idx, std::uint64_t segno, const std::string& segment) {
  for (const auto& rp : idx.restore_points) {
    if (std::find(names_.begin(), names_.end(), rp.name) == names_.end()) names_.push_back(rp.name);
  }
  if (idx.max_time && (!newest_commit_ || *idx.max_time > *newest_commit_)) newest_commit_ = idx.max_time;
  if (!idx.xid_runs.empty()) {
    std::uint32_t lo = idx.xid_runs.front().first, hi = idx.xid_runs.back().second;
    if (xid_range_) lo = std::min(lo, xid_range_->first), hi = std::max(hi, xid_range_->second);
    xid_range_ = std::make_pair(lo, hi);
  }
  if (!walked_first_ || segno < walked_first_->first) walked_first_ = std::make_pair(segno, segment);
  if (!walked_last_ || segno > walked_last_->first) walked_last_ = std::make_pair(segno, segment);
}

std::string TargetResolver::describe_record(const std::optional<WalEvent>& event, const std::string& segment) const {
  if (!event) {
    return (target_.kind == TargetKind::Time ? "first commit or abort " + std::string(exclusive_ ? "at or after " : "after ") + target_.value
                                             : "commit or abort of xid " + target_.value) +
           " in segment " + segment;
  }
  std::string what = std::string(wal_event_kind_name(event->kind));
  if (event->kind == WalEventKind::RestorePoint) what += " \"" + event->name + "\"";
  else what += " of xid " + std::to_string(event->xid);
  return what + " at " + format_lsn(event->lsn) + " (" + format_pg_timestamp(event->time) + ") in segment " + segment;
}

TargetVerdict TargetResolver::verdict(const BackupManifest& b, std::uint64_t segno, const std::string& segment,
                                      const std::optional<WalEvent>& event, const std::string& how) const {
  TargetVerdict v;
  std::string record = describe_record(event, segment);
  v.target = {true, segment, event ? std::optional<std::uint64_t>(event->lsn) : std::nullopt, record + ", " + how};
  const std::uint64_t seg = inv_.wal_segment_size;
  // Without the record's LSN the segment decides: the walk reads the segment itself where the backup stops.
  bool serves = event ? event->lsn >= b.stop_lsn : segno > b.stop_lsn / seg;
  v.kind = serves ? TargetVerdict::Kind::Serves : TargetVerdict::Kind::Before;
  v.end = event ? std::max(event->end_lsn, event->lsn + 1) - 1 : (segno + 1) * seg - 1;
  if (!serves) {
    v.why = "backup " + b.label + " ends at " + format_lsn(b.stop_lsn) + ", after the target's " + record +
            " (recovery cannot stop before the backup is consistent)";
  }
  return v;
}

TargetVerdict TargetResolver::judge(const BackupManifest& b, const std::vector<ChainStep>& chain) {
  const std::uint64_t seg = inv_.wal_segment_size;
  Walk w{&b, b.start_lsn, b.start_lsn / seg, b.stop_lsn / seg, nullptr};
  const std::uint64_t end_segno = archived_end_lsn(inv_, chain) / seg;  // exclusive
  auto unresolved = [](const std::string& why) { return TargetVerdict{TargetVerdict::Kind::Unresolved, {}, {}, why}; };
  for (std::uint64_t s = w.first_segno; s < end_segno; ++s) {
    prefetch_from(chain, s, end_segno);
    w.step = &step_of(chain, s);
    const std::string name = segment_file_name(w.step->timeline, s, seg);
    const WalObject* obj = served(chain, s);
    if (!obj) return unresolved(not_resolved("segment " + name + " is not in the archive"));
    const std::optional<WalIndex>& idx = cached_index(*obj);
    if (!idx) {
      auto p = problems_.find(name);
      return unresolved(not_resolved(p != problems_.end() ? "the WAL index of segment " + name + " is invalid (" + p->second + ")"
                                                          : "segment " + name + " has no WAL index (archived by an older pgvault?)"));
    }
    note(*idx, s, name);
    std::optional<Match> m = index_match(*idx, w);
    if (m && m->event) return verdict(b, s, name, m->event, "found in the WAL index");
    // Where the index cannot decide, the segment's own records do: the target may lie before the replay's
    // start or the timeline's end, its LSN is compared with the stop LSN, or the open record may be it.
    bool edge = s == w.first_segno || s == w.stop_segno || w.step->end_lsn < (s + 1) * seg;
    bool open = idx->open_record_may_be_event && idx->open_record_lsn && w.sees(*idx->open_record_lsn);
    if ((m && edge) || (!m && open)) {
      std::string problem;
      std::optional<WalEvent> e = first_exact(chain, s, w, problem);
      if (!problem.empty()) return unresolved(problem);
      if (e) return verdict(b, s, name, e, "read from the WAL segment");
      continue;
    }
    if (m) return verdict(b, s, name, std::nullopt, "found in the WAL index");
  }
  std::string from = segment_file_name(step_of(chain, w.first_segno).timeline, w.first_segno, seg);
  return {TargetVerdict::Kind::Absent, {}, {}, "the archived WAL from backup " + b.label + "'s start (" + from +
                                                   ") on does not reach the target " + describe_target(target_)};
}

std::string TargetResolver::absent_message() const {
  std::string where = walked_first_ ? " in the archived WAL (" + walked_first_->second + ".." + walked_last_->second + ")"
                                    : " in the archived WAL (none after the backups' start)";
  switch (target_.kind) {
    case TargetKind::Name: {
      std::string have;
      for (std::size_t i = 0; i < names_.size() && i < kNamesShown; ++i) have += (i ? ", \"" : "\"") + names_[i] + "\"";
      if (names_.size() > kNamesShown) have += " and " + std::to_string(names_.size() - kNamesShown) + " more";
      return "restore point \"" + target_.value + "\" was never created" + where +
             (have.empty() ? "; it holds no restore point" : "; the restore points there are " + have);
    }
    case TargetKind::Time:
      return "no transaction commits or aborts " + std::string(exclusive_ ? "at or after " : "after ") + target_.value + where +
             (newest_commit_ ? "; the newest archived commit or abort is at " + format_pg_timestamp(*newest_commit_)
                             : "; it holds no commit or abort");
    case TargetKind::Xid:
      return "transaction " + target_.value + " never commits or aborts" + where +
             (xid_range_ ? "; the xids that do range from " + std::to_string(xid_range_->first) + " to " +
                               std::to_string(xid_range_->second)
                         : "; no transaction commits or aborts there");
    default: return "the target " + describe_target(target_) + " is not in the archived WAL";
  }
}

}  // namespace pgvault
