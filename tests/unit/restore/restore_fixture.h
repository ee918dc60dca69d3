// The restore tests' fixture: a repository in memory holding one synthetic backup and its WAL.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include "common/base/errors.h"
#include "common/crypto/crypto.h"
#include "common/pg/crc32c.h"
#include "common/restore/restore.h"
#include "support/test_support.h"

namespace pgvault::restore_test {

constexpr std::uint32_t kSeg = 16u << 20;
inline std::string seg_name(std::uint32_t tli, std::uint64_t segno) { return segment_file_name(tli, segno, kSeg); }
inline std::string seg_key(std::uint32_t tli, std::uint64_t segno) { return keys::wal(*WalFileName::parse(seg_name(tli, segno))); }

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline unsigned mode_of(const std::string& path) {
  struct stat sb{};
  if (::lstat(path.c_str(), &sb) != 0) return 0;
  return sb.st_mode & 07777;
}

inline bool exists(const std::string& path) {
  struct stat sb{};
  return ::lstat(path.c_str(), &sb) == 0;
}

// A repository in memory holding one synthetic backup (files split over two bundles) and its WAL.
struct Fixture {
  testing::MemoryStorage* mem = nullptr;
  std::unique_ptr<Repository> repo;
  BackupManifest m;
  testing::TempDir tmp;
  bool legacy_sha256 = false;  // per-file "sha256" as format 1 manifests (older pgvault) have

  explicit Fixture(bool legacy = false) : legacy_sha256(legacy) {
    if (legacy) m.format = 1;
    auto s = std::make_unique<testing::MemoryStorage>();
    mem = s.get();
    Config c;
    c.compression.method = Compression::Zstd;
    repo = std::make_unique<Repository>(std::move(s), c);
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
    m.label = "20260101T000000Z-F";
    m.timeline = 1;
    m.start_lsn = 2ull * kSeg + 0x28;
    m.stop_lsn = 3ull * kSeg + 0x100;
    m.start_wal = seg_name(1, 2);
    m.stop_wal = seg_name(1, 3);
    m.start_time = "2026-01-01T00:00:00Z";
    m.stop_time = "2026-01-01T00:01:00Z";
    m.pg_version = 15;
    m.system_identifier = 42;
    m.backup_label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n";
    m.tablespaces.push_back({16384, tmp / "ts-orig"});
    m.directories = {{"base", 0, 0700}, {"base/5", 0, 0700}, {"global", 0, 0700}, {"pg_wal", 0, 0700},
                     {"pg_tblspc", 0, 0700}, {"pg_tblspc/16384", 0, 0700}, {"PG_15_202209061", 16384, 0700},
                     {"PG_15_202209061/5", 16384, 0700}};
    add_bundle(0, {{"PG_VERSION", "15\n"}, {"backup_label", m.backup_label}, {"base/5/1259", std::string(70000, 'a')},
                   {"global/pg_control", std::string(8192, 'c')}, {"empty_file", ""},
                   {"postgresql.auto.conf", "# Do not edit\nrestore_command = 'old'\nwork_mem = '8MB'\n"}});
    add_bundle(1, {{"tablespace_map", "16384 /old/place\n"}, {"PG_15_202209061/5/16390", "tablespace data"},
                   {"base/5/16385", "relation"}});
    for (auto& f : m.files) {
      if (f.path.rfind("PG_15", 0) == 0) f.tablespace = 16384;
    }
    for (std::uint64_t n = 1; n <= 6; ++n) repo->put_bytes(seg_key(1, n), as_bytes("wal"));
  }

  void add_bundle(std::uint64_t index, std::vector<std::pair<std::string, std::string>> files) {
    std::string plain;
    for (auto& [path, content] : files) {
      ManifestFile f;
      f.path = path;
      f.size = content.size();
      f.mode = path == "PG_VERSION" ? 0640 : 0600;
      f.mtime = 1700000000;
      if (legacy_sha256) f.sha256 = to_hex(sha256(as_bytes(content)));
      else f.crc32c = crc32c_hex(crc32c(as_bytes(content)));
      f.bundle = index;
      f.offset = plain.size();
      plain += content;
      m.files.push_back(f);
    }
    repo->put_bytes(keys::backup_bundle(m.label, index), as_bytes(plain));
    m.bundles.push_back({index, plain.size(), 0, to_hex(sha256(as_bytes(plain)))});
  }

  void commit() { write_manifest(*repo, m); }

  RestoreOptions options() {
    RestoreOptions o;
    o.pgdata = tmp / "pgdata";
    o.restore_command = make_restore_command("/usr/lib/pgvault/wal-fetch", "/etc/pg vault.toml", {});
    o.parallel = 2;
    return o;
  }
};

}  // namespace pgvault::restore_test
