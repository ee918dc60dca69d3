// The inventory's WAL arithmetic: segment lookup, gaps, timeline chains as PostgreSQL 15 follows them,
// the WAL check before a recovery, and the recovery window (see inventory.h for the timeline rules).
#include <algorithm>
#include <limits>
#include <set>

#include "common/base/errors.h"
#include "common/repo/inventory.h"

namespace pgvault {

namespace {

constexpr std::uint64_t kOpen = std::numeric_limits<std::uint64_t>::max();

const WalObject* find_in(const std::vector<WalObject>& segs, std::uint64_t segno) {
  auto it = std::lower_bound(segs.begin(), segs.end(), segno,
                             [](const WalObject& w, std::uint64_t s) { return w.segno < s; });
  return it != segs.end() && it->segno == segno ? &*it : nullptr;
}

// Highest archived segno of `timeline` within [lo, hi], if any.
std::optional<std::uint64_t> last_in_range(const Inventory& inv, std::uint32_t timeline, std::uint64_t lo,
                                           std::uint64_t hi) {
  auto it = inv.wal.find(timeline);
  if (it == inv.wal.end()) return std::nullopt;
  const auto& segs = it->second.segments;
  auto ub = std::upper_bound(segs.begin(), segs.end(), hi,
                             [](std::uint64_t s, const WalObject& w) { return s < w.segno; });
  if (ub == segs.begin()) return std::nullopt;
  --ub;
  if (ub->segno < lo) return std::nullopt;
  return ub->segno;
}

const ChainStep& step_for(const std::vector<ChainStep>& chain, std::uint64_t segno) {
  // The newest step whose begin segment is <= segno (PostgreSQL's XLogFileReadAnyTLI).
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (it->begin_segno <= segno) return *it;
  }
  return chain.front();
}

// One timeline of a history as PostgreSQL's readTimeLineHistory builds it: the line's timeline begins
// at the previous line's switchpoint (0 for the first) and ends at its own (the history's own timeline
// has no end).
struct HistorySpan {
  std::uint32_t timeline = 0;
  std::uint64_t begin = 0;
  std::uint64_t end = kOpen;
};

std::vector<HistorySpan> history_spans(const TimelineHistory& h) {
  std::vector<HistorySpan> out;
  std::uint64_t begin = 0;
  for (const auto& e : h.entries) {
    out.push_back({e.parent, begin, e.switchpoint});
    begin = e.switchpoint;
  }
  out.push_back({h.timeline, begin, kOpen});
  return out;
}

// PostgreSQL's tliOfPointInHistory: the newest timeline whose [begin, end) holds `lsn`. A newer timeline
// takes precedence, so a span whose switchpoint is not after an older one's is empty.
std::uint32_t timeline_of_point(const std::vector<HistorySpan>& spans, std::uint64_t lsn) {
  for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
    if (it->begin <= lsn && lsn < it->end) return it->timeline;
  }
  return 0;
}

// Where each span really ends once newer timelines took their part: the smallest switchpoint from its
// own on.
std::vector<std::uint64_t> effective_ends(const std::vector<HistorySpan>& spans) {
  std::vector<std::uint64_t> out(spans.size());
  std::uint64_t end = kOpen;
  for (std::size_t k = spans.size(); k-- > 0;) {
    end = std::min(end, spans[k].end);
    out[k] = end;
  }
  return out;
}

}  // namespace

const WalObject* Inventory::find_segment(std::uint32_t timeline, std::uint64_t segno) const {
  auto it = wal.find(timeline);
  return it == wal.end() ? nullptr : find_in(it->second.segments, segno);
}

std::vector<SegmentRange> timeline_gaps(const WalTimeline& tl) {
  std::vector<SegmentRange> out;
  for (std::size_t i = 1; i < tl.segments.size(); ++i) {
    std::uint64_t prev = tl.segments[i - 1].segno, cur = tl.segments[i].segno;
    if (cur > prev + 1) out.push_back({tl.timeline, prev + 1, cur - 1});
  }
  return out;
}

std::vector<ChainStep> timeline_chain(const Inventory& inv, std::uint32_t from_timeline, std::uint64_t from_lsn,
                                      std::uint32_t to_timeline) {
  const std::uint64_t seg = inv.wal_segment_size;
  if (to_timeline == from_timeline) return {ChainStep{from_timeline, 0, kOpen, 0, kOpen}};
  auto not_child = [&](const std::string& why) {
    return Error(ErrorKind::InvalidInput, "timeline " + std::to_string(to_timeline) +
                                              " is not a child of timeline " + std::to_string(from_timeline) +
                                              " after " + format_lsn(from_lsn) + ": " + why);
  };
  if (to_timeline < from_timeline) throw not_child("it is older");
  auto it = inv.histories.find(to_timeline);
  if (it == inv.histories.end()) {
    throw Error(ErrorKind::NotFound, "history file " + history_file_name(to_timeline) + " of timeline " +
                                         std::to_string(to_timeline) + " is not in the archive");
  }
  const TimelineHistory& h = it->second;
  if (!h.error.empty()) {
    throw Error(ErrorKind::Corruption, "history file " + history_file_name(to_timeline) + ": " + h.error);
  }
  const std::vector<HistorySpan> spans = history_spans(h);
  const std::vector<std::uint64_t> ends = effective_ends(spans);
  std::size_t i = 0;
  while (i < spans.size() && spans[i].timeline != from_timeline) ++i;
  if (i == spans.size()) throw not_child("its history does not contain timeline " + std::to_string(from_timeline));
  // PostgreSQL refuses to start when the point recovery starts from is not on the backup's timeline in the
  // requested timeline's history ("requested timeline is not a child of this server's history").
  if (timeline_of_point(spans, from_lsn) != from_timeline) {
    throw not_child("it branched off at " + format_lsn(ends[i]));
  }
  // Segment s is read from the newest timeline whose first segment is <= s (XLogFileReadAnyTLI), so a
  // timeline is read up to the segment before the smallest first segment of a newer one. A timeline with
  // nothing left to read (an empty one, or two switches inside one segment) is dropped.
  std::vector<ChainStep> chain;
  std::uint64_t later_begin = kOpen;  // smallest first segment of the newer steps
  for (std::size_t j = spans.size(); j-- > i;) {
    std::uint64_t begin_lsn = j == i ? 0 : spans[j].begin;
    std::uint64_t begin_segno = begin_lsn / seg;
    if (begin_segno < later_begin) {
      chain.push_back({spans[j].timeline, begin_segno, later_begin == kOpen ? kOpen : later_begin - 1, begin_lsn,
                       ends[j]});
    }
    later_begin = std::min(later_begin, begin_segno);
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

std::uint32_t latest_timeline(const Inventory& inv, std::uint32_t timeline) {
  std::uint32_t newest = timeline;
  for (std::uint32_t probe = timeline + 1; inv.has_history(probe); ++probe) newest = probe;
  return newest;
}

std::vector<std::uint32_t> descendant_timelines(const Inventory& inv, std::uint32_t timeline, std::uint64_t lsn) {
  std::vector<std::uint32_t> out{timeline};
  for (const auto& [tli, h] : inv.histories) {
    if (tli <= timeline || !h.error.empty()) continue;
    if (timeline_of_point(history_spans(h), lsn) == timeline) out.push_back(tli);
  }
  return out;
}

std::uint64_t archived_end_lsn(const Inventory& inv, const std::vector<ChainStep>& chain) {
  std::uint64_t end = 0;
  for (const auto& s : chain) {
    if (auto last = last_in_range(inv, s.timeline, s.begin_segno, s.end_segno)) {
      end = std::max(end, (*last + 1) * inv.wal_segment_size);
    }
  }
  return end;
}

WalCheck check_wal_path(const Inventory& inv, const std::vector<ChainStep>& chain, std::uint64_t start_lsn,
                        std::optional<std::uint64_t> end_lsn, std::uint64_t min_end_lsn) {
  WalCheck r;
  r.chain = chain;
  if (chain.empty()) throw Error(ErrorKind::Internal, "check_wal_path: empty timeline chain");
  const std::uint64_t seg = inv.wal_segment_size;
  r.first_segno = start_lsn / seg;
  std::uint64_t last = std::max(end_lsn.value_or(0), min_end_lsn) / seg;
  if (!end_lsn) {
    std::uint64_t archived = archived_end_lsn(inv, chain);
    if (archived > 0) last = std::max(last, archived / seg - 1);
  }
  r.last_segno = std::max(last, r.first_segno);
  for (std::uint64_t s = r.first_segno; s <= r.last_segno; ++s) {
    const ChainStep& step = step_for(chain, s);
    ++r.segments;
    if (inv.find_segment(step.timeline, s)) continue;
    std::string name = segment_file_name(step.timeline, s, inv.wal_segment_size);
    if (!r.missing) {
      r.missing = name;
      r.missing_key = keys::wal(*WalFileName::parse(name));
    }
    if (r.missing_all.size() < 1000) r.missing_all.push_back(name);
  }
  return r;
}

namespace {

// The chain from a backup to the newest timeline that descends from it.
std::optional<std::vector<ChainStep>> newest_chain(const Inventory& inv, const BackupManifest& b) {
  std::vector<std::uint32_t> cands = descendant_timelines(inv, b.timeline, b.start_lsn);
  std::sort(cands.begin(), cands.end());
  for (auto it = cands.rbegin(); it != cands.rend(); ++it) {
    try {
      return timeline_chain(inv, b.timeline, b.start_lsn, *it);
    } catch (const Error&) {
    }
  }
  return std::nullopt;
}

}  // namespace

RecoveryWindow recovery_window(const Inventory& inv) {
  RecoveryWindow w;
  const std::uint64_t seg = inv.wal_segment_size;
  for (const auto& b : inv.backups) {
    auto chain = newest_chain(inv, b);
    if (!chain) continue;
    // Contiguous WAL from the backup start: it is usable when it reaches the stop segment.
    WalCheck c = check_wal_path(inv, *chain, b.start_lsn, std::nullopt, b.stop_lsn);
    std::uint64_t contiguous_end;  // exclusive end segno
    if (c.missing) {
      auto p = WalFileName::parse(*c.missing);
      contiguous_end = segment_number(p->log, p->seg, seg);
    } else {
      contiguous_end = c.last_segno + 1;
    }
    if (contiguous_end <= b.stop_lsn / seg) continue;  // cannot even reach consistency
    if (!w.available) {
      w.available = true;
      w.earliest_time = b.stop_time;
      w.earliest_lsn = b.stop_lsn;
      w.earliest_backup = b.label;
    }
    std::uint64_t end_lsn = contiguous_end * seg;
    if (end_lsn >= w.latest_lsn) {
      w.latest_lsn = end_lsn;
      const ChainStep& step = step_for(*chain, contiguous_end - 1);
      w.latest_timeline = step.timeline;
      w.latest_segment = segment_file_name(step.timeline, contiguous_end - 1, inv.wal_segment_size);
      const WalObject* o = inv.find_segment(step.timeline, contiguous_end - 1);
      w.latest_mtime = o ? o->mtime : 0;
    }
  }
  return w;
}

}  // namespace pgvault
