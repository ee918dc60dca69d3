#include "common/repo/backups.h"

#include <algorithm>
#include <map>

#include "common/base/errors.h"
#include "common/repo/layout.h"
#include "common/repo/repo.h"

namespace pgvault {

std::vector<BackupFolder> list_backup_folders(Storage& storage) {
  std::map<std::string, BackupFolder> by_label;
  for (const auto& obj : storage.list(keys::backups_prefix())) {
    auto parsed = keys::parse_backup_key(obj.key);
    if (!parsed) continue;
    BackupFolder& f = by_label[parsed->label];
    f.label = parsed->label;
    f.objects++;
    f.stored_bytes += obj.size;
    f.newest_mtime = std::max(f.newest_mtime, obj.mtime);
    f.has_manifest = f.has_manifest || obj.key == keys::backup_manifest(f.label);
    f.has_tombstone = f.has_tombstone || obj.key == keys::backup_tombstone(f.label);
    f.has_marks = f.has_marks || obj.key == keys::backup_marks(f.label);
  }
  std::vector<BackupFolder> out;
  for (auto& [label, f] : by_label) out.push_back(std::move(f));
  return out;
}

BackupListing list_backups(Repository& repo) {
  BackupListing out;
  for (const auto& f : list_backup_folders(repo.storage())) {
    if (f.has_manifest) out.complete.push_back(read_manifest(repo, f.label));
    else out.incomplete.push_back(f.label);
  }
  return out;
}

BackupManifest read_manifest(Repository& repo, const std::string& label) {
  std::string key = keys::backup_manifest(label);
  const std::string text = repo.get_text(key);  // a manifest is ~0.22 KB per file
  BackupManifest m = BackupManifest::from_json(text, repo.describe() + "/" + key);
  if (m.label != label) {
    throw Error(ErrorKind::Corruption, repo.describe() + "/" + key + ": manifest is for backup " + m.label);
  }
  return m;
}

void write_manifest(Repository& repo, const BackupManifest& m) {
  ManifestText text(m);  // made as the store reads it: tens of thousands of entries are never held as text
  repo.put_object(keys::backup_manifest(m.label), text, PutOptions{.if_absent = true, .size = {}});
}

}  // namespace pgvault
