#include "common/repo/inventory.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/base/task_group.h"

namespace pgvault {

namespace {

std::string base_of(const std::string& key) {
  auto slash = key.rfind('/');
  return slash == std::string::npos ? key : key.substr(slash + 1);
}

}  // namespace

void add_wal_listing(Inventory& inv, const std::vector<ObjectInfo>& wal_objects) {
  for (const auto& obj : wal_objects) {
    std::string name = base_of(obj.key);
    if (name.rfind(kTempPrefix, 0) == 0) continue;  // an upload in progress
    auto parsed = WalFileName::parse(name);
    if (!parsed || keys::wal(*parsed) != obj.key) {
      inv.unknown_keys.push_back(obj.key);
      continue;
    }
    WalObject w;
    w.timeline = parsed->timeline;
    w.name = name;
    w.key = obj.key;
    w.stored_size = obj.size;
    w.mtime = obj.mtime;
    switch (parsed->kind) {
      case WalFileKind::History: {
        TimelineHistory h;
        h.timeline = parsed->timeline;
        h.key = obj.key;
        inv.histories[h.timeline] = std::move(h);
        break;
      }
      case WalFileKind::Segment:
      case WalFileKind::Partial: {
        w.segno = segment_number(parsed->log, parsed->seg, inv.wal_segment_size);
        auto& tl = inv.wal[w.timeline];
        tl.timeline = w.timeline;
        (parsed->kind == WalFileKind::Segment ? tl.segments : tl.partials).push_back(std::move(w));
        break;
      }
      case WalFileKind::BackupHistory:
        w.segno = segment_number(parsed->log, parsed->seg, inv.wal_segment_size);
        inv.backup_history_files.push_back(std::move(w));
        break;
    }
  }
  for (auto& [tli, tl] : inv.wal) {
    auto by_seg = [](const WalObject& a, const WalObject& b) { return a.segno < b.segno; };
    auto same = [](const WalObject& a, const WalObject& b) { return a.segno == b.segno; };
    for (auto* v : {&tl.segments, &tl.partials}) {
      std::stable_sort(v->begin(), v->end(), by_seg);
      v->erase(std::unique(v->begin(), v->end(), same), v->end());
    }
  }
}

std::vector<HistoryEntry> parse_history(const std::string& text, const std::string& what) {
  std::vector<HistoryEntry> out;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::size_t i = 0;
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i == line.size() || line[i] == '#') continue;
    auto bad = [&](const std::string& why) {
      return Error(ErrorKind::Corruption, what + " line " + std::to_string(lineno) + ": " + why);
    };
    std::size_t j = i;
    while (j < line.size() && std::isdigit(static_cast<unsigned char>(line[j]))) ++j;
    if (j == i || j - i > 10 || j == line.size() || !std::isspace(static_cast<unsigned char>(line[j]))) {
      throw bad("expected a timeline number");
    }
    std::uint64_t parent = std::stoull(line.substr(i, j - i));
    if (parent == 0 || parent > 0xFFFFFFFFull) throw bad("timeline out of range");
    while (j < line.size() && std::isspace(static_cast<unsigned char>(line[j]))) ++j;
    std::size_t k = j;
    while (k < line.size() && !std::isspace(static_cast<unsigned char>(line[k]))) ++k;
    HistoryEntry e;
    e.parent = static_cast<std::uint32_t>(parent);
    try {
      e.switchpoint = parse_lsn(std::string_view(line).substr(j, k - j), what);
    } catch (const Error&) {
      throw bad("expected a switchpoint LSN");
    }
    while (k < line.size() && std::isspace(static_cast<unsigned char>(line[k]))) ++k;
    e.reason = line.substr(k);
    // PostgreSQL (readTimeLineHistory) requires increasing timelines only: a switchpoint that is not after
    // the previous one is valid and leaves the timeline between them empty (see history_spans).
    if (!out.empty() && e.parent <= out.back().parent) throw bad("timelines must increase");
    out.push_back(std::move(e));
  }
  return out;
}

namespace {

// Reads and parses every history file of the listing; an unreadable one is kept with its error.
void read_histories(Repository& repo, Inventory& inv) {
  for (auto& [tli, h] : inv.histories) {
    try {
      Bytes data = repo.get_bytes(h.key);
      h.entries = parse_history(std::string(data.begin(), data.end()), repo.describe() + "/" + h.key);
      if (h.entries.empty() || h.entries.back().parent >= tli) {
        h.entries.clear();
        h.error = "history of timeline " + std::to_string(tli) + " does not end with an older timeline";
      }
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Corruption && e.kind() != ErrorKind::NotFound) throw;
      h.entries.clear();
      h.error = e.what();
    }
  }
}

// The marks of a complete backup; unreadable ones count as kept (see Inventory::marks).
void add_marks(Repository& repo, Inventory& inv, const std::string& label) {
  try {
    if (auto m = read_marks(repo, label)) inv.marks[label] = std::move(*m);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Corruption) throw;
    BackupMarks m;
    m.label = label;
    m.keep = true;
    m.error = e.what();
    inv.marks[label] = std::move(m);
  }
}

// The backups: one per folder under backups/, complete when its manifest can be read.
void add_backups(Repository& repo, Inventory& inv) {
  for (const auto& f : list_backup_folders(repo.storage())) {
    IncompleteBackup inc{f.label, f.objects, f.stored_bytes, f.newest_mtime, ""};
    if (!f.has_manifest) {
      inv.incomplete.push_back(std::move(inc));
      continue;
    }
    try {
      BackupManifest m = read_manifest(repo, f.label);
      m.drop_files();
      inv.backups.push_back(std::move(m));
      if (f.has_marks) add_marks(repo, inv, f.label);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Corruption && e.kind() != ErrorKind::NotFound && e.kind() != ErrorKind::Config) {
        throw;
      }
      inc.error = e.what();
      inc.error_kind = e.kind();
      inv.incomplete.push_back(std::move(inc));
    }
  }
}

}  // namespace

BackupManifest with_files(Repository& repo, const BackupManifest& head) {
  if (!head.files_dropped) return head;
  BackupManifest m = read_manifest(repo, head.label);
  if (m.file_count() != head.file_count() || m.head_json() != head.head_json()) {
    throw Error(ErrorKind::Corruption, repo.describe() + "/" + keys::backup_manifest(head.label) +
                                           ": the manifest changed since the repository was listed");
  }
  return m;
}

Inventory load_inventory(Repository& repo) {
  Inventory inv;
  inv.identity = repo.identity();
  if (inv.identity && valid_segment_size(inv.identity->wal_segment_size)) {
    inv.wal_segment_size = inv.identity->wal_segment_size;
  }
  add_wal_listing(inv, repo.storage().list(keys::wal_prefix()));
  read_histories(repo, inv);
  add_backups(repo, inv);
  return inv;
}

namespace {

// Adds segment `seg`'s index to its timeline's targets; `begin` is where the timeline begins.
void add_index(TimelineTargets& t, const WalIndex& idx, std::uint64_t begin) {
  ++t.indexed;
  if (idx.min_time && (!t.first_commit || *idx.min_time < *t.first_commit)) t.first_commit = idx.min_time;
  if (idx.max_time && (!t.last_commit || *idx.max_time > *t.last_commit)) t.last_commit = idx.max_time;
  for (const auto& rp : idx.restore_points) {
    if (rp.lsn >= begin) t.restore_points.push_back(rp);
  }
}

}  // namespace

RecoveryTargets recovery_targets(const Inventory& inv,
                                 const std::function<std::optional<WalIndex>(const WalObject&)>& index_of) {
  RecoveryTargets out;
  for (const auto& [tli, tl] : inv.wal) {
    TimelineTargets t;
    t.timeline = tli;
    auto h = inv.histories.find(tli);
    std::uint64_t begin = h != inv.histories.end() && !h->second.entries.empty() ? h->second.entries.back().switchpoint : 0;
    for (const auto& seg : tl.segments) {
      ++t.segments;
      try {
        if (std::optional<WalIndex> idx = index_of(seg)) add_index(t, *idx, begin);
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::Corruption) throw;
        out.invalid.emplace_back(seg.name, e.what());
      }
    }
    out.timelines.push_back(std::move(t));
  }
  return out;
}

RecoveryTargets load_recovery_targets(Repository& repo, const Inventory& inv, int parallel) {
  std::vector<const WalObject*> segs;
  for (const auto& [tli, tl] : inv.wal) {
    for (const auto& s : tl.segments) segs.push_back(&s);
  }
  struct Slot {
    std::optional<WalIndex> index;
    std::optional<Error> error;
  };
  std::vector<Slot> slots(segs.size());
  repo.read_key();  // cached in this thread before the workers share the repository (repo.h)
  repo.identity();
  TaskGroup group(parallel);
  group.run(segs.size(), [&](std::size_t i) {
    try {
      slots[i].index = read_wal_index(repo, *WalFileName::parse(segs[i]->name));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Corruption) throw;
      slots[i].error = e;
    }
  });
  std::map<const WalObject*, Slot*> by_segment;
  for (std::size_t i = 0; i < segs.size(); ++i) by_segment[segs[i]] = &slots[i];
  return recovery_targets(inv, [&](const WalObject& seg) {
    Slot& slot = *by_segment.at(&seg);
    if (slot.error) throw *slot.error;
    return slot.index;
  });
}

const BackupManifest* Inventory::find_backup(const std::string& label) const {
  auto it = std::lower_bound(backups.begin(), backups.end(), label,
                             [](const BackupManifest& m, const std::string& l) { return m.label < l; });
  if (it != backups.end() && it->label == label) return &*it;
  for (const auto& m : backups) {  // not sorted (a hand-built inventory): look at every one
    if (m.label == label) return &m;
  }
  return nullptr;
}

const IncompleteBackup* Inventory::find_incomplete(const std::string& label) const {
  for (const auto& i : incomplete) {
    if (i.label == label) return &i;
  }
  return nullptr;
}

}  // namespace pgvault
