#include "common/retention/run.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "common/repo/lock.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

using namespace pgvault;

TEST(RetentionRun, StaleLockTimeoutMustBeAPositiveDuration) {
  EXPECT_EQ(stale_lock_timeout("1h"), 3600);
  EXPECT_EQ(stale_lock_timeout("90m"), 5400);
  EXPECT_THROW_KIND(stale_lock_timeout("0h"), ErrorKind::Config);
  EXPECT_THROW_KIND(stale_lock_timeout("1y"), ErrorKind::Config);
}

TEST(RetentionRun, ClockIsTheTestClockWhenSet) {
  ::setenv("PGVAULT_TEST_NOW", "1700000000", 1);
  EXPECT_EQ(retention_clock(), 1700000000);
  ::setenv("PGVAULT_TEST_NOW", "soon", 1);
  EXPECT_THROW_KIND(retention_clock(), ErrorKind::Config);
  ::unsetenv("PGVAULT_TEST_NOW");
  std::int64_t before = static_cast<std::int64_t>(std::time(nullptr));
  std::int64_t now = retention_clock();
  EXPECT_GE(now, before);
  EXPECT_LE(now, before + 5);
}

// The lock moved out of retention-prune's main: a dry run takes none (so it runs beside a real one), a
// real run refuses a lock another run holds, and a finished run leaves no lock behind.
TEST(RetentionRun, ARealRunHoldsTheLockADryRunTakesNone) {
  pgvault::testing::TempDir dir;
  Config c;
  c.repository.path = dir.path() + "/repo";
  c.compression.method = Compression::None;
  Repository repo(make_fs_storage(c.repository.path), c);
  repo.ensure_identity(Identity{kRepositoryFormat, 42, 15, 16u << 20, ""});
  RetentionPolicy policy;
  policy.full_backups = 1;
  PruneOptions o;
  o.now = 1700000000;
  auto other = RepositoryLock::acquire(repo.storage(), "retention", {"retention-prune", 3600, o.now});
  o.dry_run = true;
  EXPECT_NE(run_retention_prune(repo, policy, o).find("policy: full_backups 1"), std::string::npos);
  o.dry_run = false;
  EXPECT_THROW_KIND(run_retention_prune(repo, policy, o), ErrorKind::Conflict);
  other.release();
  run_retention_prune(repo, policy, o);
  EXPECT_FALSE(repo.storage().head("locks/retention"));
}
