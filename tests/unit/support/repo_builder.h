// Repository builders for unit tests: a complete backup's manifest, WAL segments with a valid first page
// header, and a small in-memory repository holding one backup and its WAL (verify and the renderers).
#pragma once

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/crypto/crypto.h"
#include "common/pg/crc32c.h"
#include "common/repo/block_diff.h"
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

// Backups of a chain in a repository, built file by file: a full backup, then incrementals whose
// entries are full, unchanged or blocks (a block-diff written by BlockDiffWriter). Each backup starts
// one segment after the previous one. Block size kChainBlock keeps the files small.
inline constexpr std::uint32_t kChainBlock = 1024;

// `n` blocks of kChainBlock bytes, block i filled with fill + i.
inline std::string blocks_text(std::size_t n, char fill) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += std::string(kChainBlock, static_cast<char>(fill + i));
  return s;
}

struct ChainBuilder {
  Repository& repo;
  std::vector<BackupManifest> backups;        // committed or being built (the last one)
  std::map<std::string, std::string> content;  // path -> the content the chain reconstructs so far
  std::string plain;                          // the bundle being filled
  std::uint64_t bundle = 0;
  std::uint32_t seg_size = 16u << 20;

  explicit ChainBuilder(Repository& r, std::uint32_t segment_size = 16u << 20) : repo(r), seg_size(segment_size) {}
  BackupManifest& cur() { return backups.back(); }

  // Starts the next backup: a full one when `parent` is "", else an incremental of `parent`.
  void begin(const std::string& label, const std::string& parent = "") {
    std::uint64_t seg = 2 + 2 * backups.size();
    std::string from;  // a server-side incremental's backup_label names its parent's start
    for (const auto& b : backups) from = b.label == parent ? format_lsn(b.start_lsn) : from;
    backups.push_back(backup_manifest(label, 1, seg, seg + 1, seg_size));
    cur().type = parent.empty() ? "full" : "incremental";
    cur().parent = parent;
    cur().incremental_mode = parent.empty() ? "" : "client";
    cur().backup_label = "START WAL LOCATION: 0/0\nCHECKPOINT LOCATION: " + format_lsn(cur().start_lsn) + "\n" +
                         (from.empty() ? "" : "INCREMENTAL FROM LSN: " + from + "\nINCREMENTAL FROM TLI: 1\n");
    cur().directories = {{"base", 0, 0700}, {"base/5", 0, 0700}, {"global", 0, 0700}};
    bundle = 0;
    plain.clear();
  }
  ManifestFile& entry(const std::string& path, std::uint64_t size, const std::string& crc) {
    cur().files.push_back(ManifestFile{path, 0, size, 0600, 1700000000, crc, bundle, plain.size(), ""});
    return cur().files.back();
  }
  void full(const std::string& path, const std::string& text) {
    entry(path, text.size(), crc32c_hex(crc32c(as_bytes(text))));
    plain += text;
    content[path] = text;
  }
  void unchanged(const std::string& path) {
    const std::string& text = content.at(path);
    entry(path, text.size(), crc32c_hex(crc32c(as_bytes(text)))).kind = FileKind::Unchanged;
  }
  // A block-diff entry; `expected` is the content the test expects after it (recorded for unchanged()).
  void blocks(const std::string& path, std::uint64_t truncation, std::uint64_t length,
              const std::map<std::uint32_t, std::string>& changed, const std::string& expected) {
    Bytes diff;
    VectorSink sink(diff);
    BlockDiffWriter w(sink, BlockDiffHeader{kChainBlock, truncation, length});
    for (const auto& [n, b] : changed) w.add(n, as_bytes(b));
    w.finish();
    ManifestFile& f = entry(path, length * kChainBlock, crc32c_hex(crc32c(diff)));
    f.kind = FileKind::Blocks;
    f.stored_size = diff.size();
    plain.append(reinterpret_cast<const char*>(diff.data()), diff.size());
    content[path] = expected;
  }
  void drop(const std::string& path) { content.erase(path); }
  // Ends the current bundle; the next entries go to a new one.
  void next_bundle() {
    put_bundle();
    ++bundle;
    plain.clear();
  }
  void commit() {
    put_bundle();
    write_manifest(repo, cur());
  }

 private:
  void put_bundle() {
    repo.put_bytes(keys::backup_bundle(cur().label, bundle), as_bytes(plain));
    cur().bundles.push_back({bundle, plain.size(), 0, to_hex(sha256(as_bytes(plain)))});
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
