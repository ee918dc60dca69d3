#include "common/pg/relpath.h"

#include <gtest/gtest.h>

namespace pgvault {
namespace {

TEST(RelationPath, DataDirectoryRelations) {
  auto f = parse_relation_path("base/5/16384", false);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->database, 5u);
  EXPECT_EQ(f->relfilenode, 16384u);
  EXPECT_EQ(f->fork, RelFork::Main);
  EXPECT_EQ(f->segment, 0u);
  f = parse_relation_path("base/16385/16390_vm.2", false);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->fork, RelFork::Vm);
  EXPECT_EQ(f->segment, 2u);
  EXPECT_EQ(parse_relation_path("base/1/2619_fsm", false)->fork, RelFork::Fsm);
  EXPECT_EQ(parse_relation_path("base/1/16400_init", false)->fork, RelFork::Init);
  f = parse_relation_path("global/1262", false);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->database, 0u);
}

TEST(RelationPath, TablespaceRelations) {
  auto f = parse_relation_path("PG_17_202406281/16385/16400.1", true);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->database, 16385u);
  EXPECT_EQ(f->segment, 1u);
  EXPECT_FALSE(parse_relation_path("PG_17_202406281/16385/16400", false));
  EXPECT_FALSE(parse_relation_path("base/5/16400", true));
  EXPECT_FALSE(parse_relation_path("XX_17_202406281/16385/16400", true));
}

TEST(RelationPath, OtherFilesAreNotRelations) {
  for (const char* p : {"PG_VERSION", "base/5/PG_VERSION", "base/5/pg_filenode.map", "global/pg_control",
                        "base/5/t3_16384", "base/5/16384_foo", "base/5/016384", "base/0/16384", "base/5/16384.",
                        "base/5/16384.x", "pg_xact/0000", "base/5/sub/16384", "base/5/99999999999", "base//16384"}) {
    EXPECT_FALSE(parse_relation_path(p, false)) << p;
  }
}

TEST(RelationPath, IncrementalPrefix) {
  EXPECT_EQ(strip_incremental_prefix("base/5/INCREMENTAL.16384.1"), "base/5/16384.1");
  EXPECT_EQ(strip_incremental_prefix("INCREMENTAL.x"), "x");
  EXPECT_FALSE(strip_incremental_prefix("base/5/16384"));
  EXPECT_FALSE(strip_incremental_prefix("base/INCREMENTAL.5/16384"));
}

}  // namespace
}  // namespace pgvault
