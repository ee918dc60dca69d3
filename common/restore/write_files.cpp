// The files: bundles are decoded in parallel (TaskGroup, one task per bundle, the most bytes first);
// each bundle's plaintext is split into its files by the one BundleSplitter, and the visitor here writes
// them beneath their root (O_EXCL | O_NOFOLLOW, never through a link), with their mode and mtime, checked
// against the manifest's checksum and size; finish_file leaves their durability to the commit's syncfs or
// fsyncs them (fs_sync.h). The bundle object itself is verified by the repository (its SHA-256). A large
// bundle is decoded on a thread of its own beside the one writing its files (read_beside), and a large
// file goes past the page cache where the syncfs covers it (DirectFileWriter).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>

#include "common/base/byte_pipe.h"
#include "common/base/direct_write.h"
#include "common/base/errors.h"
#include "common/base/fs_sync.h"
#include "common/base/progress.h"
#include "common/base/task_group.h"
#include "common/repo/bundle_split.h"
#include "common/restore/restore_steps.h"

namespace pgvault::restore_detail {

namespace {

using BundleFiles = std::pair<const std::uint64_t, std::vector<const ManifestFile*>>;  // index, files

struct Counters {
  std::atomic<std::uint64_t> files{0};
  std::atomic<std::uint64_t> bytes{0};
};

// A file this large is written past the page cache (DirectFileWriter): a large table's segments. Only on
// the local filesystems whose durability FilesystemSync leaves to one syncfs (ext4, xfs, btrfs): a
// network filesystem's direct writes would each wait for the server.
constexpr std::uint64_t kDirectFileBytes = 16u << 20;

// Writes the files of one bundle as the splitter hands them over. Throws (ending the bundle) on a file
// that fails verification, on extra or missing bytes, and once the group stops after another bundle failed.
class RestoreVisitor final : public BundleVisitor {
 public:
  RestoreVisitor(const RestoreDest& dest, const std::vector<const ManifestFile*>& files, std::string bundle_key,
                 const TaskGroup& group, Counters& counters)
      : dest_(dest), files_(files), bundle_(std::move(bundle_key)), group_(group), n_(counters) {}

  void attach(const BundleSplitter& splitter) { splitter_ = &splitter; }
  // The file being written, or the next one between files, "" after the last (for messages).
  std::string current() const { return ended_ < files_.size() ? files_[ended_]->path : ""; }

  void on_begin(const ManifestFile& f) override {
    check_stop();
    path_.clear();
    fd_ = Fd();
    if (skipped_file(f)) return;
    check_restore_path(dest_.label, "file", f.path, false);
    auto [root, rel] = dest_.dest(f);
    path_ = root + "/" + rel;
    fd_ = open_file_beneath(root, rel, true);
    file_.start(fd_.get(), path_, f.size >= kDirectFileBytes && sync_deferred(fd_.get()));
    writeback_.reset();
  }

  void on_data(const ManifestFile&, ByteView part) override {
    check_stop();
    if (fd_) {
      file_.write(part);
      if (!file_.direct()) writeback_.wrote(fd_.get(), part.size());
    }
    n_.bytes += part.size();
  }

  void on_end(const ManifestFile& f, const std::string& mismatch) override {
    if (!mismatch.empty()) throw Error(ErrorKind::Corruption, "file " + f.path + " fails verification: " + mismatch);
    if (fd_) {
      file_.finish();
      // What reached the file, not only what passed its checksum on the way there: a write lost in
      // between would be a restore that succeeds with a damaged table.
      const std::uint64_t written = size_of(fd_.get(), path_);
      if (written != f.size) {
        throw Error(ErrorKind::Io, path_ + " has " + std::to_string(written) + " bytes once written, the manifest says " +
                                       std::to_string(f.size));
      }
      finish_file(fd_, f, path_);
      n_.files++;
    }
    ++ended_;
  }

  void on_extra(std::uint64_t) override {
    throw Error(ErrorKind::Corruption, bundle_ + " holds more bytes than the manifest's files (" +
                                           std::to_string(splitter_->position()) + " or more)");
  }

  void on_truncated(std::uint64_t pos, const ManifestFile& f) override {
    throw Error(ErrorKind::Corruption, bundle_ + " ended after " + std::to_string(pos) + " bytes, inside " + f.path +
                                           " (offset " + std::to_string(f.offset) + ", " + std::to_string(f.size) +
                                           " bytes)");
  }

 private:
  void check_stop() const {
    if (group_.stop_requested()) throw Error(ErrorKind::Interrupted, "stopped after another bundle failed");
  }

  const RestoreDest& dest_;
  const std::vector<const ManifestFile*>& files_;  // in the splitter's order
  std::string bundle_;
  const TaskGroup& group_;
  Counters& n_;
  const BundleSplitter* splitter_ = nullptr;
  std::size_t ended_ = 0;
  Fd fd_;
  std::string path_;
  DirectFileWriter file_;
  WritebackAhead writeback_;  // for the files written through the page cache
};

// The manifest's files by bundle, each bundle's sorted by offset (overlaps are Corruption).
std::map<std::uint64_t, std::vector<const ManifestFile*>> files_by_bundle(const BackupManifest& m,
                                                                          const RestoreDest& dest) {
  m.require_files("restore");
  std::map<std::uint64_t, std::vector<const ManifestFile*>> out;
  for (const auto& f : m.files) {
    if (f.tablespace != 0 && !dest.tablespace_dirs.count(f.tablespace)) {
      throw Error(ErrorKind::Corruption, "backup " + m.label + ": file " + f.path + " belongs to tablespace " +
                                             std::to_string(f.tablespace) + ", which the manifest does not list");
    }
    out[f.bundle].push_back(&f);
  }
  for (auto& [idx, files] : out) sort_bundle_files(files, m.label, idx);
  return out;
}

// The order the workers take the bundles in: the most bytes of files first (by index among equals). A
// bundle is decoded by one thread, so the one holding a large table is the restore's critical path: it
// starts at once instead of behind smaller bundles that the other workers can take meanwhile.
std::vector<const BundleFiles*> largest_first(
    const std::map<std::uint64_t, std::vector<const ManifestFile*>>& by_bundle) {
  std::vector<std::pair<std::uint64_t, const BundleFiles*>> sized;
  for (const auto& entry : by_bundle) {
    std::uint64_t bytes = 0;
    for (const ManifestFile* f : entry.second) bytes += f->size;
    sized.emplace_back(bytes, &entry);
  }
  std::stable_sort(sized.begin(), sized.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<const BundleFiles*> out;
  for (const auto& [bytes, entry] : sized) out.push_back(entry);
  return out;
}

// A bundle holding at least this many bytes of files (a large table's: a file larger than the bundle
// size has a bundle of its own) is read, decompressed and hashed in a thread of its own while the
// task's thread checks and writes its files, through a pipe of kPipedBundleBuffer bytes. Such a bundle
// is the restore's critical path, and once the smaller bundles are done a core is idle. With the
// file's write-back started as it is written (WritebackAhead), the pgbench scale-50 restore here went
// from 0.96 s to 0.74 s (tests/bench/results/restore-sync.md: each change alone gained nothing).
constexpr std::uint64_t kPipedBundleBytes = 64u << 20;
constexpr std::size_t kPipedBundleBuffer = 4u << 20;

// One task: bundle `idx` decoded into its files. An error names the backup, the bundle and the file.
void restore_bundle(Repository& repo, const RestoreDest& dest, std::uint64_t idx,
                    const std::vector<const ManifestFile*>& files, const TaskGroup& group, Counters& counters) {
  std::string key = keys::backup_bundle(dest.label, idx);
  RestoreVisitor visitor(dest, files, key, group, counters);
  BundleSplitter splitter(files, visitor);
  visitor.attach(splitter);
  std::uint64_t bytes = 0;
  for (const ManifestFile* f : files) bytes += f->size;
  try {
    if (bytes < kPipedBundleBytes) {
      repo.get_object(key, splitter);
    } else {
      // The decoder closes the pipe only after it verified the whole bundle; until then the splitter
      // has not finished (a bundle that fails its digest fails here, as on one thread).
      BytePipe pipe(kPipedBundleBuffer, nullptr);
      PipeInput input(pipe);
      read_beside(pipe, [&] { repo.get_object(key, input); }, [&] { pipe.pump_into(splitter); });
    }
  } catch (...) {
    rethrow_in_bundle(dest.label, key, visitor.current());
  }
}

}  // namespace

void rethrow_in_bundle(const std::string& label, const std::string& key, const std::string& file) {
  try {
    throw;
  } catch (const Error& e) {
    std::string ctx = "backup " + label + ": " + (file.empty() ? "" : "file " + file + " (") + "bundle " +
                      base_name(key) + (file.empty() ? "" : ")");
    throw Error(e.kind(), ctx + ": " + e.what());
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Internal, "backup " + label + ": " + e.what());
  }
}

// Files of the backup that must not be restored as they are: pitr-prepare writes its own signal file and
// creates the tablespace links itself; a server's pid/opts files never belong in a restored directory.
bool skipped_file(const ManifestFile& f) {
  if (f.tablespace != 0) return false;
  static const std::set<std::string> names = {"tablespace_map", "recovery.signal", "standby.signal", "postmaster.pid",
                                              "postmaster.opts", "backup_manifest", kRestoreMarker};
  return names.count(f.path) != 0;
}

WriteTotals write_bundles(Repository& repo, const BackupManifest& m, const RestoreDest& dest,
                          const RestoreOptions& opts) {
  const auto by_bundle = files_by_bundle(m, dest);
  const std::vector<const BundleFiles*> bundles = largest_first(by_bundle);
  std::uint64_t total = 0;
  for (const auto& f : m.files) total += f.size;

  repo.read_key();  // load (and verify) the key once, before the threads share the repository
  TaskGroup group(opts.parallel > 0 ? opts.parallel : repo.config().backup.parallel);
  Counters counters;
  Progress progress(opts.progress, "restoring " + m.label);
  progress.set_total(total);
  group.run(
      bundles.size(),
      [&](std::size_t i) { restore_bundle(repo, dest, bundles[i]->first, bundles[i]->second, group, counters); },
      [&] {
        progress.set_done(counters.bytes.load());
        progress.tick();
      });
  progress.clear();
  return {counters.files.load(), counters.bytes.load()};
}

}  // namespace pgvault::restore_detail
