// ChainRepo: a repository in memory for the restore tests of incremental chains (incremental_restore_test,
// chain_pipe_test): a FaultStorage over a MemoryStorage, WAL segments 1..12 and a ChainBuilder.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "restore/restore_fixture.h"
#include "support/repo_builder.h"

namespace pgvault::restore_test {

inline std::string block(char fill) { return std::string(pgvault::testing::kChainBlock, fill); }
inline std::string zeros(std::size_t blocks) { return std::string(blocks * pgvault::testing::kChainBlock, '\0'); }

struct ChainRepo {
  pgvault::testing::MemoryStorage* mem = nullptr;
  pgvault::testing::FaultStorage* fault = nullptr;
  std::unique_ptr<Repository> repo;
  std::unique_ptr<pgvault::testing::ChainBuilder> chain;
  pgvault::testing::TempDir tmp;

  ChainRepo() {
    auto s = std::make_unique<pgvault::testing::MemoryStorage>();
    mem = s.get();
    auto f = std::make_unique<pgvault::testing::FaultStorage>(std::move(s));
    fault = f.get();
    Config c;
    c.compression.method = Compression::Zstd;
    repo = std::make_unique<Repository>(std::move(f), c);
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
    for (std::uint64_t n = 1; n <= 12; ++n) repo->put_bytes(seg_key(1, n), as_bytes("wal"));
    chain = std::make_unique<pgvault::testing::ChainBuilder>(*repo);
  }
  RestoreOptions options(const std::string& backup = "") {
    RestoreOptions o;
    o.pgdata = tmp / "pgdata";
    o.restore_command = "wal-fetch %f %p";
    o.parallel = 2;
    o.backup = backup;
    return o;
  }
  std::string file(const std::string& rel) {
    std::string p = tmp / ("pgdata/" + rel);
    if (rel == "global/pg_control") return slurp(p);
    return exists(p) ? slurp(p) : "<missing>";
  }
  // From now on, every bundle read is recorded (keys; by the restore's worker threads).
  void record_bundle_reads() {
    fault->fail = [this](const std::string& op, const std::string& key) {
      if (op != "get" || key.find("/bundle-") == std::string::npos) return;
      std::lock_guard<std::mutex> lock(read_mutex);
      read.push_back(key);
    };
  }
  std::vector<std::string> bundles_read() {
    std::vector<std::string> out = read;
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> read;
  std::mutex read_mutex;
  // Every regular file of the restored directory has the content the chain builder expects.
  void expect_contents() {
    for (const auto& [path, text] : chain->content) EXPECT_EQ(file(path), text) << path;
  }
};
}  // namespace pgvault::restore_test
