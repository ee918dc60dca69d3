// execute_retention(): deletion order, crashes and failures midway, the lock, and the storage's optional
// capabilities (temporary files, emptied folders) used without knowing the backend.
#include "common/retention/retention.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/repo/lock.h"
#include "common/storage/storage_fs.h"
#include "retention/retention_fixtures.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using namespace retention_fixtures;

// ---- execution over an in-memory repository -------------------------------------------------------

Config plain_config() {
  Config c;
  c.repository.type = "memory";
  c.compression.method = Compression::None;
  return c;
}

struct MemRepo {
  testing::FaultStorage* fault = nullptr;
  testing::MemoryStorage* mem = nullptr;
  std::unique_ptr<Repository> repo;
  MemRepo() {
    auto m = std::make_unique<testing::MemoryStorage>();
    mem = m.get();
    auto f = std::make_unique<testing::FaultStorage>(std::move(m));
    fault = f.get();
    repo = std::make_unique<Repository>(std::move(f), plain_config());
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
  }
  void segs(std::uint32_t tli, std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t s = first; s <= last; ++s) repo->put_bytes(seg_key(tli, s), as_bytes("wal"));
  }
  void add(const BackupManifest& m) {
    repo->put_bytes(keys::backup_bundle(m.label, 0), as_bytes("bundle0"));
    repo->put_bytes(keys::backup_bundle(m.label, 1), as_bytes("bundle1"));
    write_manifest(*repo, m);
  }
  // WAL 1..15 on timeline 1; full backups finished on days 0, 1 and 2, starting at segments 2, 6 and 10.
  struct Three {
    BackupManifest b0, b1, b2;
  };
  Three three_backups() {
    segs(1, 1, 15);
    Three t{F(0, 2), F(1, 6), F(2, 10)};
    for (const auto* m : {&t.b0, &t.b1, &t.b2}) add(*m);
    return t;
  }
  std::size_t count(const std::string& prefix) { return repo->storage().list(prefix).size(); }
  RetentionPlan plan(const RetentionPolicy& p, std::int64_t now) {
    return plan_retention(load_inventory(*repo), p, now, scan_retention_extras(*repo));
  }
};

TEST(RetentionExecTest, DeletesBackupThenWalAndReportsBytes) {
  MemRepo r;
  auto [b0, b1, b2] = r.three_backups();
  std::vector<std::string> removed_order;
  r.fault->fail = [&](const std::string& op, const std::string& key) {
    if (op == "remove") removed_order.push_back(key);
  };
  RetentionPlan p = r.plan(policy(2), kT0 + 3 * kDay);
  RetentionExecOptions o;
  o.batch = 2;
  RetentionResult res = execute_retention(*r.repo, p, o);
  EXPECT_EQ(res.backups_deleted, 1u);
  EXPECT_EQ(res.wal_files_deleted, 5u);
  EXPECT_GT(res.bytes_freed, 0u);
  EXPECT_EQ(r.count(keys::backup_prefix(b0.label)), 0u);
  EXPECT_EQ(r.count(keys::backup_prefix(b1.label)), 3u);
  EXPECT_FALSE(r.repo->storage().head(seg_key(1, 5)));
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 6)));
  // Manifest first, then bundles, then WAL.
  ASSERT_GE(removed_order.size(), 3u);
  EXPECT_EQ(removed_order.front(), keys::backup_manifest(b0.label));
  auto pos = [&](const std::string& k) {
    return std::find(removed_order.begin(), removed_order.end(), k) - removed_order.begin();
  };
  EXPECT_LT(pos(keys::backup_bundle(b0.label, 1)), pos(seg_key(1, 1)));
  EXPECT_NE(retention_summary_line(p, res).find("deleted 1 backup, 5 WAL files"), std::string::npos)
      << retention_summary_line(p, res);

  // A second run finds nothing to do.
  RetentionPlan again = r.plan(policy(2), kT0 + 3 * kDay);
  EXPECT_EQ(again.backups_to_delete(), 0u);
  EXPECT_EQ(again.wal_files_to_delete(), 0u);
}

TEST(RetentionExecTest, CrashAfterManifestDeleteIsFinishedByTheNextRun) {
  MemRepo r;
  auto [b0, b1, b2] = r.three_backups();
  struct Crash {};
  RetentionExecOptions o;
  o.hook = [](std::string_view step) {
    if (step == "manifest-delete") throw Crash{};
  };
  std::int64_t now = kT0 + 3 * kDay;
  EXPECT_THROW(execute_retention(*r.repo, r.plan(policy(1), now), o), Crash);

  // In between: the backup is gone from every reader (no manifest), its bundles remain, WAL untouched.
  Inventory mid = load_inventory(*r.repo);
  ASSERT_EQ(mid.backups.size(), 2u);
  EXPECT_EQ(mid.backups[0].label, b1.label);
  ASSERT_EQ(mid.incomplete.size(), 1u);
  EXPECT_EQ(mid.incomplete[0].label, b0.label);
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 1)));

  // The next run (same second: the leftovers are young) finishes the job.
  RetentionPlan p = r.plan(policy(1), now);
  ASSERT_EQ(p.incomplete.size(), 1u);
  EXPECT_EQ(p.incomplete[0].rule, "interrupted-delete");
  EXPECT_EQ(labels(p, RetentionAction::Delete), std::vector<std::string>{b1.label});
  RetentionResult res = execute_retention(*r.repo, p);
  EXPECT_EQ(res.incomplete_deleted, 1u);
  EXPECT_EQ(res.backups_deleted, 1u);
  EXPECT_EQ(r.count(keys::backup_prefix(b0.label)), 0u);
  EXPECT_EQ(r.count(keys::backup_prefix(b1.label)), 0u);
  EXPECT_FALSE(r.repo->storage().head(seg_key(1, 9)));
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 10)));
}

TEST(RetentionExecTest, StorageFailureMidwayLeavesAReadableRepository) {
  MemRepo r;
  r.segs(1, 1, 15);
  BackupManifest b0 = F(0, 2), b1 = F(1, 6);
  r.add(b0);
  r.add(b1);
  r.fault->fail = [&](const std::string& op, const std::string& key) {
    if (op == "remove" && key == keys::backup_bundle(b0.label, 1)) throw Error(ErrorKind::Transient, "503");
  };
  std::int64_t now = kT0 + 3 * kDay;
  try {
    execute_retention(*r.repo, r.plan(policy(1), now));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
  }
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 1)));  // no WAL deleted after a failed backup delete
  r.fault->fail = [](auto&, auto&) {};
  RetentionPlan p = r.plan(policy(1), now);
  EXPECT_EQ(p.incomplete_to_delete(), 1u);
  execute_retention(*r.repo, p);
  EXPECT_EQ(r.count(keys::backup_prefix(b0.label)), 0u);
  EXPECT_FALSE(r.repo->storage().head(seg_key(1, 5)));
}

// Another process's record, as a run that took the lock over writes it.
void take_lock_over(Storage& st) {
  write_all(st, "locks/retention",
            as_bytes("{\"tool\":\"retention-prune\",\"host\":\"elsewhere\",\"pid\":7,\"time\":" +
                     std::to_string(kT0) + ",\"token\":\"theirs\"}"));
}

// What a run that stopped right after the first backup's manifest delete leaves: b0's bundles, the
// other backups and every WAL segment.
void expect_stopped_after_first_manifest(MemRepo& r, const BackupManifest& b0, const BackupManifest& b1) {
  EXPECT_FALSE(r.repo->storage().head(keys::backup_manifest(b0.label)));
  EXPECT_TRUE(r.repo->storage().head(keys::backup_bundle(b0.label, 0)));
  EXPECT_TRUE(r.repo->storage().head(keys::backup_manifest(b1.label)));
  EXPECT_TRUE(r.repo->storage().head(seg_key(1, 1)));
}

// A run with the options `o` stops with Conflict, its message holding `expected`.
void expect_lock_conflict(MemRepo& r, const RetentionExecOptions& o, const std::string& expected) {
  try {
    execute_retention(*r.repo, r.plan(policy(1), kT0 + 3 * kDay), o);
    FAIL() << "went on deleting without its lock";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Conflict);
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(RetentionExecTest, ALockTakenOverStopsDeletingAtOnce) {
  MemRepo r;
  auto [b0, b1, b2] = r.three_backups();
  auto lock = RepositoryLock::acquire(r.repo->storage(), "retention", LockOptions{"retention-prune", 3600, kT0});
  RetentionExecOptions o;
  o.check = [&] { lock.check(); };
  o.hook = [&](std::string_view step) {
    if (step == "manifest-delete") take_lock_over(r.repo->storage());
  };
  expect_lock_conflict(r, o, "lock locks/retention is no longer ours (now held by retention-prune on host elsewhere");
  expect_stopped_after_first_manifest(r, b0, b1);
  lock.release();  // the new holder's lock stays
  EXPECT_TRUE(r.repo->storage().head("locks/retention"));
}

TEST(RetentionExecTest, AFailedLockRefreshStopsDeletingAtOnce) {
  MemRepo r;
  auto [b0, b1, b2] = r.three_backups();
  auto lock = RepositoryLock::acquire(r.repo->storage(), "retention", LockOptions{"retention-prune", 3600, kT0});
  std::atomic<bool> refresh_fails{false}, refresh_failed{false};
  r.fault->fail = [&](const std::string& op, const std::string& key) {
    if (op == "put" && key == "locks/retention" && refresh_fails) {
      refresh_failed = true;
      throw Error(ErrorKind::Transient, "s3 put locks/retention: HTTP 503 after 5 attempts");
    }
  };
  lock.keep_fresh(std::chrono::milliseconds(10));
  RetentionExecOptions o;
  o.check = [&] { lock.check(); };
  o.hook = [&](std::string_view step) {
    if (step != "manifest-delete") return;
    refresh_fails = true;
    for (int i = 0; i < 500 && !refresh_failed; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(refresh_failed);
  };
  expect_lock_conflict(r, o, "lock locks/retention was lost: s3 put locks/retention: HTTP 503");
  expect_stopped_after_first_manifest(r, b0, b1);
}

// ---- the storage's optional capabilities -----------------------------------------------------------

// Retention deletes leftover temporary files and removes the folders it emptied through the Storage
// alone: the repository here is on the fs backend while its configuration names none (retention never
// asks which backend it runs on).
TEST(RetentionExecTest, TemporariesAndEmptiedFoldersGoThroughTheStorage) {
  testing::TempDir dir;
  Repository repo(make_fs_storage(dir / "repo"), plain_config());
  ASSERT_NE(repo.config().repository.type, "fs");
  repo.ensure_identity(Identity{kRepositoryFormat, 42, 15, kSeg, ""});
  for (std::uint64_t s = 1; s <= 15; ++s) repo.put_bytes(seg_key(1, s), as_bytes("wal"));
  for (std::uint64_t s = 1; s <= 3; ++s) repo.put_bytes(seg_key(2, s), as_bytes("wal"));  // a folder of its own
  BackupManifest b0 = F(0, 2), b1 = F(1, 6);
  for (const auto& m : {b0, b1}) {
    repo.put_bytes(keys::backup_bundle(m.label, 0), as_bytes("bundle0"));
    write_manifest(repo, m);
  }
  const std::int64_t now = kT0 + 3 * kDay;
  const std::string wal_folder = dir / ("repo/" + keys::folder_of(seg_key(1, 6)));
  const std::string old_tmp = wal_folder + std::string(kTempPrefix) + "old";
  const std::string young_tmp = wal_folder + std::string(kTempPrefix) + "young";
  std::ofstream(old_tmp) << "12345";
  std::ofstream(young_tmp) << "1";
  auto at = [](std::int64_t t) {
    return std::filesystem::file_time_type::clock::from_sys(std::chrono::system_clock::from_time_t(t));
  };
  std::filesystem::last_write_time(old_tmp, at(now - 2 * kDay));
  std::filesystem::last_write_time(young_tmp, at(now - 60));

  RetentionPlan p = plan_retention(load_inventory(repo), policy(1), now, scan_retention_extras(repo));
  ASSERT_EQ(p.temporaries.size(), 2u);
  RetentionResult res = execute_retention(repo, p);
  EXPECT_EQ(res.backups_deleted, 1u);
  EXPECT_EQ(res.temporaries_deleted, 1u);
  EXPECT_FALSE(std::filesystem::exists(old_tmp));
  EXPECT_TRUE(std::filesystem::exists(young_tmp));
  EXPECT_FALSE(std::filesystem::exists(dir / ("repo/" + keys::backup_prefix(b0.label))));
  EXPECT_FALSE(std::filesystem::exists(dir / ("repo/" + keys::folder_of(seg_key(2, 1)))));
  EXPECT_TRUE(std::filesystem::exists(wal_folder));  // still holds the kept WAL
  EXPECT_TRUE(repo.storage().head(keys::backup_manifest(b1.label)));
}

}  // namespace
}  // namespace pgvault
