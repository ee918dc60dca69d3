// Repository builders for unit tests: a complete backup's manifest, WAL segments with a valid first page
// header, and a small in-memory repository holding one backup and its WAL (verify and the renderers).
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/crypto/crypto.h"
#include "common/pg/crc32c.h"
#include "common/repo/inventory.h"
#include "common/report/verify.h"
#include "support/test_support.h"

namespace pgvault::testing {

// The manifest of a complete backup on timeline `tli` that starts in segment start_seg and stops in
// stop_seg (no files, no bundles).
inline BackupManifest backup_manifest(const std::string& label, std::uint32_t tli, std::uint64_t start_seg,
                                      std::uint64_t stop_seg, std::uint32_t seg_size = 16u << 20) {
  BackupManifest m;
  m.label = label;
  m.timeline = tli;
  m.start_lsn = start_seg * seg_size + 0x28;
  m.stop_lsn = stop_seg * seg_size + 0x100;
  m.start_wal = segment_file_name(tli, start_seg, seg_size);
  m.stop_wal = segment_file_name(tli, stop_seg, seg_size);
  m.wal_segment_size = seg_size;
  m.start_time = "2026-01-01T00:00:00Z";
  m.stop_time = "2026-01-01T00:01:00Z";
  m.pg_version = 15;
  m.system_identifier = 42;
  m.backup_label = "START WAL LOCATION: ...";
  return m;
}

inline constexpr std::uint32_t kSmallSeg = 1u << 20;

// A 1 MiB WAL segment of timeline 1, zeros after a valid long page header.
inline Bytes wal_segment(std::uint64_t segno, std::uint64_t sysid) {
  Bytes b(kSmallSeg, 0);
  std::uint16_t magic = 0xD110, info = 0x0002;
  std::uint32_t tli = 1, seg = kSmallSeg, blck = 8192;
  std::uint64_t addr = segno * kSmallSeg;
  std::memcpy(&b[0], &magic, 2);
  std::memcpy(&b[2], &info, 2);
  std::memcpy(&b[4], &tli, 4);
  std::memcpy(&b[8], &addr, 8);
  std::memcpy(&b[24], &sysid, 8);
  std::memcpy(&b[32], &seg, 4);
  std::memcpy(&b[36], &blck, 4);
  return b;
}

// A repository in memory (behind a FaultStorage) of database system 42 with 1 MiB segments 1..8 of
// timeline 1 and backup m (segments 2..3) of three files in bundle 0: PG_VERSION, an empty file and
// base/1/1259 (5000 bytes). verify() writes m's manifest, then verifies.
struct VerifyRepo {
  MemoryStorage* mem = nullptr;
  FaultStorage* fault = nullptr;
  std::unique_ptr<Repository> repo;
  BackupManifest m;
  // legacy: per-file "sha256" as in format 1 manifests (written by pgvault before CRC-32C).
  explicit VerifyRepo(bool legacy = false) {
    auto s = std::make_unique<MemoryStorage>();
    mem = s.get();
    auto faulty = std::make_unique<FaultStorage>(std::move(s));
    fault = faulty.get();
    repo = std::make_unique<Repository>(std::move(faulty), Config{});
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSmallSeg, ""});
    for (std::uint64_t n = 1; n <= 8; ++n) put_segment(n, 42);
    m = backup_manifest("20260101T000000Z-F", 1, 2, 3, kSmallSeg);
    std::string plain;
    for (auto [path, content] : std::vector<std::pair<std::string, std::string>>{
             {"PG_VERSION", "15\n"}, {"empty", ""}, {"base/1/1259", std::string(5000, 'x')}}) {
      ManifestFile f{path, 0, content.size(), 0600, 0, crc32c_hex(crc32c(as_bytes(content))), 0, plain.size(), ""};
      if (legacy) {
        f.crc32c.clear();
        f.sha256 = to_hex(sha256(as_bytes(content)));
        m.format = 1;
      }
      m.files.push_back(f);
      plain += content;
    }
    repo->put_bytes(bundle_key(), as_bytes(plain));
    m.bundles.push_back({0, plain.size(), mem->objects[bundle_key()].size(), to_hex(sha256(as_bytes(plain)))});
  }
  std::string bundle_key() const { return keys::backup_bundle(m.label, 0); }
  std::string seg_key_small(std::uint64_t n) { return keys::wal(*WalFileName::parse(segment_file_name(1, n, kSmallSeg))); }
  void put_segment(std::uint64_t n, std::uint64_t sysid) {
    Bytes b = wal_segment(n, sysid);
    mem->objects.erase(seg_key_small(n));
    repo->put_bytes(seg_key_small(n), b);
  }
  // Stores `plain` as bundle 0: a valid object whose plaintext the manifest may no longer describe (its
  // stored size is updated, its plaintext size and SHA-256 are not).
  void replace_bundle(ByteView plain) {
    mem->objects.erase(bundle_key());
    repo->put_bytes(bundle_key(), plain);
    m.bundles[0].stored_size = mem->objects[bundle_key()].size();
  }
  VerifyReport verify(const VerifyOptions& opts = VerifyOptions{2, false}) {
    write_manifest_once();
    return verify_repository(*repo, load_inventory(*repo), opts);
  }
  void write_manifest_once() {
    mem->objects.erase(keys::backup_manifest(m.label));
    write_manifest(*repo, m);
  }
};

// r has a problem for `key` whose message contains `needle`.
inline bool has_problem(const VerifyReport& r, const std::string& key, const std::string& needle) {
  for (const auto& p : r.problems) {
    if (p.key == key && p.message.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace pgvault::testing
