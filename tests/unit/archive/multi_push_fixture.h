// Shared by the multi_push unit tests: a local fs repository ("primary", required) and a lagging one
// ("cloud", required = false) behind FaultStorage that counts its calls and fails them on demand.
#pragma once

#include <atomic>
#include <ctime>
#include <filesystem>

#include "archive/archive_fixture.h"
#include "common/archive/multi_push.h"
#include "common/base/errors.h"
#include "common/repo/owed.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

namespace pgvault::archive_test {

using pgvault::testing::FaultStorage;

inline std::string seg_name(int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0000000100000000000000%02X", n);
  return buf;
}

// Two repositories in `config`; targets() opens the cloud one through the fault.
struct MultiFixture : Fixture {
  std::string cloud_path = dir / "cloud";
  std::atomic<bool> cloud_down{false};
  std::atomic<int> cloud_puts{0}, cloud_calls{0};

  void SetUp() override {
    Fixture::SetUp();
    config.push.owed_dir = dir / "owed";
    config.push.parallel = 2;
    Config::Repository cloud = config.repository;
    cloud.name = "cloud";
    cloud.path = cloud_path;
    cloud.required = false;
    config.repositories = {{config.repository, config.retention}, {cloud, config.retention}};
    for (const std::string& p : {repo_path, cloud_path}) Repository(make_fs_storage(p), config).initialise();
  }
  Config::Repository& cloud() { return config.repositories[1].repository; }

  std::vector<PushTarget> targets() {
    std::vector<PushTarget> t;
    t.push_back({select_repository(config, "primary"), [p = repo_path] { return make_fs_storage(p); }});
    t.push_back({select_repository(config, "cloud"), [this] {
                   auto s = std::make_unique<FaultStorage>(make_fs_storage(cloud_path));
                   s->fail = [this](const std::string& op, const std::string& key) {
                     if (op == "put" && key.starts_with("wal/")) ++cloud_puts;
                     ++cloud_calls;
                     if (cloud_down) throw Error(ErrorKind::Transient, "cloud unreachable (" + op + " " + key + ")");
                   };
                   return s;
                 }});
    return t;
  }
  std::vector<std::string> owed() {
    std::vector<std::string> out;
    for (const auto& e : OwedQueue(select_repository(config, "cloud")).list()) out.push_back(e.name);
    return out;
  }
  Bytes fetched(const std::string& path, const std::string& name) {
    Repository r(make_fs_storage(path), config);
    std::string dest = dir / ("fetched-" + name);
    EXPECT_EQ(fetch_wal(r, name, dest), FetchOutcome::Fetched);
    return read_file(dest);
  }
  std::string push_seg(int n) { return put_file(seg_name(n), make_segment(42, 1, static_cast<std::uint8_t>(n), kSeg, n)); }
  OwedQueue cloud_queue() { return OwedQueue(select_repository(config, "cloud")); }
};

}  // namespace pgvault::archive_test
