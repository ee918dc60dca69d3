// retention: scanning for tombstones and temporary files, and carrying out a plan (see retention.h).
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/retention/retention.h"

namespace pgvault {

namespace {

namespace stdfs = std::filesystem;

bool is_fs(const Repository& repo) { return repo.config().repository.type == "fs"; }

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

// Removes `dir` under the fs root if it is empty (best effort: a concurrent writer may fill it).
void remove_empty_dir(const Repository& repo, const std::string& rel) {
  std::string path = repo.config().repository.path + "/" + rel;
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
    spdlog::debug("could not remove empty directory {}: {}", path, std::strerror(errno));
  }
}

// Deletes every object of a backup directory, the tombstone last. Returns the bytes freed.
std::uint64_t remove_backup_objects(Storage& st, const std::string& label, const RetentionExecOptions& opts) {
  const std::string tomb = retention_tombstone_key(label);
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

}  // namespace

RetentionExtras scan_retention_extras(Repository& repo) {
  RetentionExtras x;
  const std::string prefix = keys::backups_prefix();
  for (const auto& o : repo.storage().list(prefix)) {
    std::string rest = o.key.substr(prefix.size());
    auto slash = rest.find('/');
    if (slash == std::string::npos || slash == 0) continue;
    std::string label = rest.substr(0, slash);
    if (o.key == retention_tombstone_key(label)) x.tombstones.insert(label);
  }
  if (is_fs(repo)) {
    // Temporary files are invisible to Storage::list: walk the directory tree ourselves.
    const stdfs::path root = repo.config().repository.path;
    std::error_code ec;
    if (!stdfs::is_directory(root, ec)) return x;
    stdfs::recursive_directory_iterator it(root, stdfs::directory_options::skip_permission_denied, ec), end;
    if (ec) throw Error(ErrorKind::Io, "list " + root.string() + ": " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) throw Error(ErrorKind::Io, "list " + root.string() + ": " + ec.message());
      const auto& entry = *it;
      std::string name = entry.path().filename().string();
      if (name.rfind(kTempPrefix, 0) != 0) continue;
      std::error_code e2;
      if (!entry.is_regular_file(e2)) continue;
      struct stat st;
      if (::lstat(entry.path().c_str(), &st) != 0) continue;  // gone meanwhile
      x.temporaries.push_back(ObjectInfo{stdfs::relative(entry.path(), root, e2).string(),
                                         static_cast<std::uint64_t>(st.st_size), st.st_mtim.tv_sec});
    }
  }
  return x;
}

RetentionResult execute_retention(Repository& repo, const RetentionPlan& plan, const RetentionExecOptions& opts) {
  RetentionResult r;
  Storage& st = repo.storage();
  auto hook = [&](std::string_view step) {
    if (opts.hook) opts.hook(step);
  };

  // 1. Complete backups, oldest first: tombstone, manifest (the commit point, so the backup vanishes from
  //    every tool at once), then the rest.
  for (const auto& d : plan.backups) {
    if (d.action != RetentionAction::Delete) continue;
    const std::string manifest = keys::backup_manifest(d.label);
    std::string tomb = "{\"deleted_by\": \"retention-prune\", \"time\": \"" + now_iso8601() + "\"}\n";
    check(opts);
    write_all(st, retention_tombstone_key(d.label), as_bytes(tomb));
    std::uint64_t manifest_size = 0;
    if (auto info = st.head(manifest)) manifest_size = info->size;
    st.remove(manifest);
    spdlog::info("deleted backup {} ({}): manifest removed", d.label, d.rule);
    hook("manifest-delete");
    r.bytes_freed += manifest_size + remove_backup_objects(st, d.label, opts);
    hook("bundles-delete");
    if (is_fs(repo)) remove_empty_dir(repo, keys::backup_prefix(d.label));
    r.backups_deleted++;
  }

  // 2. Incomplete backups.
  for (const auto& d : plan.incomplete) {
    if (d.action != RetentionAction::Delete) continue;
    r.bytes_freed += remove_backup_objects(st, d.label, opts);
    if (is_fs(repo)) remove_empty_dir(repo, keys::backup_prefix(d.label));
    spdlog::info("deleted incomplete backup {} ({})", d.label, d.rule);
    r.incomplete_deleted++;
  }

  // 3. WAL, oldest first (ranges are per timeline; order within the delete set does not matter for
  //    readers, since nothing kept needs any of it).
  std::vector<std::string> wal_keys;
  std::set<std::string> wal_dirs;
  for (const auto& w : plan.wal) {
    if (w.action != RetentionAction::Delete) continue;
    wal_keys.insert(wal_keys.end(), w.keys.begin(), w.keys.end());
    r.bytes_freed += w.stored_bytes;
  }
  std::sort(wal_keys.begin(), wal_keys.end(), [](const std::string& a, const std::string& b) {
    // by segment position (the file name minus the timeline), then by timeline
    auto base = [](const std::string& k) { return k.substr(k.rfind('/') + 1); };
    std::string ba = base(a), bb = base(b);
    std::string pa = ba.size() >= 24 ? ba.substr(8, 16) : ba, pb = bb.size() >= 24 ? bb.substr(8, 16) : bb;
    return pa != pb ? pa < pb : ba < bb;
  });
  for (const auto& k : wal_keys) wal_dirs.insert(k.substr(0, k.rfind('/') + 1));
  std::size_t done = 0;
  remove_batched(st, wal_keys, opts, [&] {
    done = std::min(wal_keys.size(), done + std::max<std::size_t>(opts.batch, 1));
    r.wal_files_deleted = done;
    hook("wal-delete");
  });
  r.wal_files_deleted = wal_keys.size();
  if (is_fs(repo)) {
    for (const auto& d : wal_dirs) remove_empty_dir(repo, d);
  }

  // 4. Temporary files (fs only).
  if (is_fs(repo)) {
    for (const auto& t : plan.temporaries) {
      if (t.action != RetentionAction::Delete) continue;
      std::string path = repo.config().repository.path + "/" + t.path;
      check(opts);
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw errno_error("unlink " + path, errno);
      r.temporaries_deleted++;
      r.bytes_freed += t.size;
    }
  }
  return r;
}

}  // namespace pgvault
