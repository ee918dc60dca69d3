#include "common/report/verify.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>

#include "common/base/errors.h"
#include "common/base/progress.h"
#include "common/base/task_group.h"
#include "common/crypto/crypto.h"
#include "common/repo/block_diff.h"
#include "common/repo/bundle_split.h"
#include "common/repo/chain.h"
#include "common/repo/layout.h"
#include "common/repo/wal_index.h"

namespace pgvault {

namespace {

// One object to read: a bundle of a backup, a WAL object or a timeline history file.
struct Task {
  enum Type { Bundle, Wal, History } type = Bundle;
  std::string key;
  const BackupManifest* backup = nullptr;   // Bundle: its backup
  std::uint64_t bundle = 0;                 // Bundle: its index
  std::vector<const ManifestFile*> files;   // Bundle: the manifest's files in it
  const WalObject* wal = nullptr;           // Wal
  bool segment = false;                     // Wal: a full segment (not .partial/.backup)
};

// Counts a WAL object's bytes and keeps its first page header.
class WalObjectSink final : public Sink {
 public:
  void write(ByteView d) override {
    if (header.size() < kWalLongHeaderSize) {
      std::size_t n = std::min(kWalLongHeaderSize - header.size(), d.size());
      header.insert(header.end(), d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
    }
    size += d.size();
  }
  void finish() override {}
  std::uint64_t size = 0;
  Bytes header;
};

// Records, for one bundle, every file whose checksum differs, every block-diff ("blocks" entry) whose
// structure or length is wrong, and where the bundle ends too early. Extra bytes after the last file are
// left to the plaintext size check.
class BundleFileCheck final : public BundleVisitor {
 public:
  void on_begin(const ManifestFile& f) override {
    diff_.reset();
    if (f.kind != FileKind::Blocks) return;
    diff_ = std::make_unique<BlockDiffReader>("blocks entry", [this, &f](const BlockDiffHeader& h) {
      if (h.file_blocks * h.block_size != f.size) {
        throw Error(ErrorKind::Corruption, "blocks entry describes " + std::to_string(h.file_blocks * h.block_size) +
                                               " bytes, the manifest says " + std::to_string(f.size));
      }
    }, [](std::uint32_t, ByteView) {});
  }
  void on_data(const ManifestFile& f, ByteView part) override {
    if (diff_) structure(f, [&] { diff_->write(part); });
  }
  void on_end(const ManifestFile& f, const std::string& mismatch) override {
    if (!mismatch.empty()) messages.push_back("file " + f.path + ": " + mismatch);
    if (diff_) structure(f, [&] { diff_->finish(); });
    diff_.reset();
  }
  void on_extra(std::uint64_t) override {}
  void on_truncated(std::uint64_t pos, const ManifestFile& inside) override {
    messages.push_back("ends after " + std::to_string(pos) + " bytes, inside file " + inside.path);
  }
  std::vector<std::string> messages;

 private:
  // The block-diff's first structural problem is recorded; the rest of that entry is not parsed.
  template <typename F>
  void structure(const ManifestFile& f, F step) {
    try {
      step();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Corruption) throw;
      messages.push_back("file " + f.path + ": " + e.what());
      diff_.reset();
    }
  }
  std::unique_ptr<BlockDiffReader> diff_;
};

class Verifier {
 public:
  Verifier(Repository& repo, const Inventory& inv, const VerifyOptions& opts)
      : repo_(repo), inv_(inv), opts_(opts), sysid_(inv.identity ? inv.identity->system_identifier : 0) {}

  // The backups one at a time (a manifest's file entries are held while its bundles are read), then the
  // WAL and history objects.
  VerifyReport run() {
    report_known_problems();
    std::vector<Task> wal = wal_tasks();
    repo_.read_key();  // load the key once before threads share the repository
    Progress progress(opts_.progress, "verifying", Progress::Unit::Items, "objects");
    std::uint64_t total = wal.size();
    for (const auto& b : inv_.backups) total += b.bundles.size();
    progress.set_total(total);
    progress_ = &progress;
    verify_backups(progress);
    read_all(wal, progress);
    progress.clear();
    progress_ = nullptr;
    check_wal_continuity();
    check_chains();
    std::sort(rep_.problems.begin(), rep_.problems.end(), [](const VerifyProblem& x, const VerifyProblem& y) {
      return std::tie(x.key, x.message) < std::tie(y.key, y.message);
    });
    return std::move(rep_);
  }

 private:
  void problem(const std::string& key, const std::string& kind, const std::string& msg) {
    std::lock_guard g(mu_);
    rep_.problems.push_back({key, kind, msg});
  }

  void report_known_problems();
  void verify_backups(Progress& progress);
  std::optional<BackupManifest> whole_manifest(const BackupManifest& head);
  std::vector<Task> bundle_tasks(const BackupManifest& b);
  void check_stored_sizes(const BackupManifest& b);
  std::vector<Task> wal_tasks();
  void read_all(const std::vector<Task>& tasks, Progress& progress);
  void read(const Task& t);
  void decoded(const Digest& d);
  void check_bundle(const Task& t);
  void check_wal_object(const Task& t);
  void check_wal_index(const WalFileName& name);
  void check_wal_continuity();
  void check_chains();

  Repository& repo_;
  const Inventory& inv_;
  const VerifyOptions& opts_;
  const std::uint64_t sysid_;  // the repository's database system (0: none yet, each segment its own)
  Progress* progress_ = nullptr;  // while the tasks run
  std::atomic<std::uint64_t> bytes_{0};
  std::mutex mu_;  // guards rep_.problems while the tasks run
  VerifyReport rep_;
};

// Problems load_inventory already found: unreadable manifests and history files.
void Verifier::report_known_problems() {
  for (const auto& inc : inv_.incomplete) {
    if (inc.error.empty()) continue;
    problem(keys::backup_manifest(inc.label), inc.error_kind == ErrorKind::Corruption ? "corruption" : "unreadable",
            inc.error);
  }
  for (const auto& [tli, h] : inv_.histories) {
    if (!h.error.empty()) problem(h.key, "corruption", h.error);
  }
  rep_.objects += inv_.backups.size();  // manifests: decoded and verified by load_inventory
}

// Each backup's bundles, one backup at a time: the next backup's manifest is read and parsed (here, so
// its memory stays in this thread's heap) while the bundles of the one before are read (a manifest of
// 80,000 files takes ~0.3 s of one core to parse). At most two manifests are held.
void Verifier::verify_backups(Progress& progress) {
  std::optional<BackupManifest> m;  // the backup whose bundles are being read
  std::vector<Task> tasks;          // ... and their tasks
  std::future<void> reading;        // declared last: waited for before the two above go
  for (const auto& head : inv_.backups) {
    std::optional<BackupManifest> next = whole_manifest(head);
    if (reading.valid()) reading.get();
    m = std::move(next);
    if (!m) continue;
    check_stored_sizes(*m);
    tasks = bundle_tasks(*m);
    reading = std::async(std::launch::async, [this, &tasks, &progress] { read_all(tasks, progress); });
  }
  if (reading.valid()) reading.get();
}

// The manifest of `head` with its file entries, read again (with_files); nullopt with the problem reported
// when it is gone or changed since the inventory was loaded (a prune or copy running beside).
std::optional<BackupManifest> Verifier::whole_manifest(const BackupManifest& head) {
  try {
    return with_files(repo_, head);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Corruption && e.kind() != ErrorKind::NotFound) throw;
    problem(keys::backup_manifest(head.label), e.kind() == ErrorKind::Corruption ? "corruption" : "missing", e.what());
    return std::nullopt;
  }
}

// One task per bundle: those the files name and those the manifest lists (even without files).
std::vector<Task> Verifier::bundle_tasks(const BackupManifest& b) {
  b.require_files("verify");
  std::vector<Task> tasks;
  std::map<std::uint64_t, std::vector<const ManifestFile*>> per_bundle;
  for (const auto& f : b.files) {
    // An "unchanged" entry stores nothing (its checksum is of the parent's content): no bundle holds it.
    if (f.kind != FileKind::Unchanged) per_bundle[f.bundle].push_back(&f);
  }
  for (const auto& mb : b.bundles) per_bundle[mb.index];
  for (auto& [idx, files] : per_bundle) {
    Task t;
    t.type = Task::Bundle;
    t.key = keys::backup_bundle(b.label, idx);
    t.backup = &b;
    t.bundle = idx;
    t.files = std::move(files);
    tasks.push_back(std::move(t));
  }
  return tasks;
}

// Stored sizes against the manifest (a bundle that is not there is reported when it is read).
void Verifier::check_stored_sizes(const BackupManifest& b) {
  std::map<std::string, std::uint64_t> sizes;
  for (const auto& o : repo_.storage().list(keys::backup_prefix(b.label))) sizes[o.key] = o.size;
  for (const auto& mb : b.bundles) {
    std::string key = keys::backup_bundle(b.label, mb.index);
    auto it = sizes.find(key);
    if (it != sizes.end() && mb.stored_size && it->second != mb.stored_size) {
      problem(key, "mismatch", "backup " + b.label + ": stored size " + std::to_string(it->second) +
                                   ", manifest says " + std::to_string(mb.stored_size));
    }
  }
}

std::vector<Task> Verifier::wal_tasks() {
  std::vector<Task> tasks;
  auto wal_task = [&](const WalObject& s, bool segment) {
    Task t;
    t.type = Task::Wal;
    t.key = s.key;
    t.wal = &s;
    t.segment = segment;
    tasks.push_back(std::move(t));
  };
  for (const auto& [tli, tl] : inv_.wal) {
    for (const auto& s : tl.segments) wal_task(s, true);
    for (const auto& s : tl.partials) wal_task(s, false);
  }
  for (const auto& s : inv_.backup_history_files) wal_task(s, false);
  for (const auto& [tli, h] : inv_.histories) {
    Task t;
    t.type = Task::History;
    t.key = h.key;
    tasks.push_back(std::move(t));
  }
  return tasks;
}

// Reads every task's object, `parallel` at a time; the first error that is not a problem stops it.
void Verifier::read_all(const std::vector<Task>& tasks, Progress& progress) {
  TaskGroup group(opts_.parallel);
  group.run(tasks.size(), [&](std::size_t i) { read(tasks[i]); }, [&] { progress.tick(); });
  rep_.objects += tasks.size();
  rep_.bytes += bytes_.exchange(0);
}

// Reads one object; a damaged or missing one is a problem, any other error is thrown (no verdict).
void Verifier::read(const Task& t) {
  try {
    if (t.type == Task::Bundle) {
      check_bundle(t);
    } else {
      check_wal_object(t);
    }
  } catch (const Error& e) {
    switch (e.kind()) {
      case ErrorKind::Corruption:
      case ErrorKind::Auth:
        problem(t.key, "corruption", e.what());
        break;
      case ErrorKind::NotFound:
        problem(t.key, "missing", t.backup ? "backup " + t.backup->label + ": bundle named by the manifest is missing"
                                           : std::string(e.what()));
        break;
      default:
        throw;
    }
  }
  progress_->add(1);
}

// An object decoded in full: its plaintext bytes count as verified.
void Verifier::decoded(const Digest& d) {
  bytes_ += d.size;
  progress_->add_bytes(d.size);
}

// A bundle: every file's checksum, then the plaintext's size and SHA-256 against the manifest.
void Verifier::check_bundle(const Task& t) {
  BundleFileCheck files;
  BundleSplitter splitter(t.files, files);
  std::vector<std::string>& msgs = files.messages;
  Digest d;
  try {
    d = repo_.get_object(t.key, splitter);
  } catch (const Error&) {
    // A damaged object: the files already found wrong name where (the object's error follows).
    for (const auto& m : msgs) problem(t.key, "corruption", "backup " + t.backup->label + ": " + m);
    throw;
  }
  decoded(d);
  for (const auto& mb : t.backup->bundles) {
    if (mb.index != t.bundle) continue;
    if (mb.plain_size != d.size) {
      msgs.push_back("plaintext size " + std::to_string(d.size) + ", manifest says " + std::to_string(mb.plain_size));
    }
    if (!mb.sha256.empty() && mb.sha256 != to_hex(d.sha256)) {
      msgs.push_back("plaintext SHA-256 " + to_hex(d.sha256) + ", manifest says " + mb.sha256);
    }
  }
  for (const auto& m : msgs) problem(t.key, "corruption", "backup " + t.backup->label + ": " + m);
}

// A WAL object or history file: decoded (digest, tag); a full segment also by size and first page
// header.
void Verifier::check_wal_object(const Task& t) {
  WalObjectSink sink;
  decoded(repo_.get_object(t.key, sink));
  if (!t.segment) return;
  if (sink.size != inv_.wal_segment_size) {
    problem(t.key, "corruption", "segment of " + std::to_string(sink.size) + " bytes, expected " +
                                     std::to_string(inv_.wal_segment_size));
    return;
  }
  WalLongHeader h = parse_wal_long_header(sink.header, t.key);
  auto name = WalFileName::parse(t.wal->name);
  if (auto bad = check_segment_header(h, *name, inv_.wal_segment_size, sysid_ ? sysid_ : h.system_identifier)) {
    problem(t.key, "corruption", bad->what());
  }
  check_wal_index(*name);
}

// The segment's WAL index, when it has one, must decode and describe the segment. A segment without
// one is no problem (archived by an older pgvault, or its index write failed: planning falls back).
void Verifier::check_wal_index(const WalFileName& name) {
  try {
    read_wal_index(repo_, name, inv_.wal_segment_size);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Corruption && e.kind() != ErrorKind::Auth) throw;
    problem(keys::wal_index(name), "corruption", e.what());
  }
}

// WAL continuity from each backup's start along every timeline descending from it; each missing segment
// is reported once (for the first backup whose path needs it).
void Verifier::check_wal_continuity() {
  std::set<std::string> reported;
  for (const auto& b : inv_.backups) {
    for (std::uint32_t tli : descendant_timelines(inv_, b.timeline, b.start_lsn)) {
      std::vector<ChainStep> chain;
      try {
        chain = timeline_chain(inv_, b.timeline, b.start_lsn, tli);
      } catch (const Error&) {
        continue;  // history problems are reported with the known problems
      }
      WalCheck c = check_wal_path(inv_, chain, b.start_lsn, std::nullopt, b.stop_lsn ? b.stop_lsn - 1 : 0);
      for (const auto& name : c.missing_all) {
        if (!reported.insert(name).second) continue;
        problem(keys::wal(*WalFileName::parse(name)), "missing",
                "WAL segment " + name + " is missing: recovery from backup " + b.label + " (timeline " +
                    std::to_string(b.timeline) + ") to timeline " + std::to_string(tli) + " stops before it");
      }
    }
  }
}

// Every incremental backup's chain is complete (common/repo/chain.h): a missing parent is "missing",
// any other broken link "corruption"; the problem's key is the manifest of the backup that cannot be restored.
void Verifier::check_chains() {
  for (const auto& b : inv_.backups) {
    BackupChain c = resolve_chain(inv_, b);
    if (c.complete()) continue;
    problem(keys::backup_manifest(b.label), c.problem_kind == ErrorKind::NotFound ? "missing" : "corruption",
            "backup " + b.label + " cannot be restored: " + c.problem);
  }
}

}  // namespace

VerifyReport verify_repository(Repository& repo, const Inventory& inv, const VerifyOptions& opts) {
  return Verifier(repo, inv, opts).run();
}

}  // namespace pgvault
