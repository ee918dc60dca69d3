#include "common/repo/layout.h"

#include <cstdio>

namespace pgvault::keys {

std::string marker() { return "pgvault.repo.json"; }
std::string identity() { return "pgvault.json"; }
std::string key_record() { return "pgvault.key.json"; }
std::string wal_prefix() { return "wal/"; }
std::string wal(const WalFileName& name) {
  if (name.kind == WalFileKind::History) return wal_prefix() + name.name;
  return wal_prefix() + name.name.substr(0, 16) + "/" + name.name;
}
std::string wal_index_prefix() { return "walindex/"; }
std::string wal_index(const WalFileName& name) {
  return wal_index_prefix() + name.name.substr(0, 16) + "/" + name.segment_part();
}
std::optional<WalFileName> parse_wal_index_key(const std::string& key) {
  const std::string prefix = wal_index_prefix();
  if (key.size() != prefix.size() + 16 + 1 + 24 || key.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  auto name = WalFileName::parse(key.substr(prefix.size() + 17));
  if (!name || name->kind != WalFileKind::Segment || wal_index(*name) != key) return std::nullopt;
  return name;
}
std::string backups_prefix() { return "backups/"; }
std::string backup_prefix(const std::string& label) { return backups_prefix() + label + "/"; }
std::string backup_manifest(const std::string& label) { return backup_prefix(label) + "manifest.json"; }
std::string backup_bundle(const std::string& label, std::uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "bundle-%06llu", static_cast<unsigned long long>(index));
  return backup_prefix(label) + buf;
}
std::string backup_server_manifest(const std::string& label) { return backup_prefix(label) + "backup_manifest"; }

std::string backup_claim(const std::string& label) { return backup_prefix(label) + "claim"; }
std::string backup_tombstone(const std::string& label) { return backup_prefix(label) + "deleting"; }
std::string backup_marks(const std::string& label) { return backup_prefix(label) + "marks"; }
std::string lock(const std::string& name) { return "locks/" + name; }

std::optional<BackupObject> parse_backup_key(const std::string& key) {
  const std::string prefix = backups_prefix();
  if (key.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string rest = key.substr(prefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  return BackupObject{rest.substr(0, slash), rest.substr(slash + 1)};
}

std::string folder_of(const std::string& key) {
  const auto slash = key.rfind('/');
  return slash == std::string::npos ? std::string() : key.substr(0, slash + 1);
}

}  // namespace pgvault::keys
