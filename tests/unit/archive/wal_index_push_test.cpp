// wal-push writes the WAL index of every whole segment it stores (archive.h, repo/wal_index.h), also
// when a retry finds the segment stored; an index write failure fails the push.
#include <gtest/gtest.h>

#include "archive/archive_fixture.h"
#include "common/repo/layout.h"
#include "common/repo/wal_index.h"
#include "support/wal_data.h"

using namespace pgvault;
using namespace pgvault::archive_test;
using pgvault::testing::FaultStorage;
using pgvault::testing::load_wal_capture;

namespace {

// PostgreSQL 15's segment 000000010000000000000007 of tests/unit/data/wal (see wal_records_test.cpp).
constexpr const char* kReal = "000000010000000000000007";

std::unique_ptr<Repository> faulty_repo(const std::string& path, const Config& config, FaultStorage** fault) {
  auto f = std::make_unique<FaultStorage>(make_fs_storage(path));
  *fault = f.get();
  return std::make_unique<Repository>(std::move(f), config);
}

TEST_F(Fixture, PushWritesTheIndexOfARealSegment) {
  std::string p = put_file(kReal, load_wal_capture("pg15-000000010000000000000007.zst"));
  Repository r = repo();
  EXPECT_EQ(push_wal(r, p).outcome, PushOutcome::Stored);
  auto index = read_wal_index(r, *WalFileName::parse(kReal));
  ASSERT_TRUE(index);
  EXPECT_EQ(index->records, 210u);
  ASSERT_EQ(index->restore_points.size(), 2u);
  EXPECT_EQ(index->restore_points[0].name, "rp_plain");
  EXPECT_EQ(index->restore_points[1].name, "rp_page");
  EXPECT_TRUE(index->has_xid(734));  // COMMIT PREPARED of xid 734
  EXPECT_FALSE(index->has_xid(728));  // a subtransaction
  EXPECT_EQ(index->open_record_lsn, std::optional<std::uint64_t>(0x7FFFD8));
  EXPECT_EQ(format_pg_timestamp(*index->max_time), "2026-11-30 08:38:50.141718+00");
}

TEST_F(Fixture, OnlyWholeSegmentsGetAnIndex) {
  Bytes seg = load_wal_capture("pg15-000000010000000000000007.zst");
  Repository r = repo();
  push_wal(r, put_file(kReal, seg));
  push_wal(r, put_file(std::string(kReal) + ".partial", seg));
  push_wal(r, put_file("00000002.history", as_bytes("1\t0/7000000\tno recovery target specified\n")));
  std::vector<std::string> keys;
  for (const auto& o : r.storage().list(keys::wal_index_prefix())) keys.push_back(o.key);
  EXPECT_EQ(keys, std::vector<std::string>{keys::wal_index(*WalFileName::parse(kReal))});
}

TEST_F(Fixture, AFailedIndexWriteFailsThePushAndTheRetryWritesIt) {
  std::string p = put_file(kReal, load_wal_capture("pg15-000000010000000000000007.zst"));
  FaultStorage* fault = nullptr;
  auto r = faulty_repo(repo_path, config, &fault);
  fault->fail = [](const std::string& op, const std::string& key) {
    if (op == "put" && key.rfind("walindex/", 0) == 0) throw Error(ErrorKind::Transient, "injected: " + key);
  };
  EXPECT_EQ(kind_of([&] { push_wal(*r, p); }), ErrorKind::Transient);
  EXPECT_TRUE(r->storage().head(keys::wal(*WalFileName::parse(kReal))));  // the segment is stored
  EXPECT_FALSE(read_wal_index(*r, *WalFileName::parse(kReal)));
  fault->fail = [](auto&, auto&) {};
  EXPECT_EQ(push_wal(*r, p).outcome, PushOutcome::AlreadyStored);
  auto index = read_wal_index(*r, *WalFileName::parse(kReal));
  ASSERT_TRUE(index);
  EXPECT_EQ(index->restore_points.size(), 2u);
}

TEST_F(Fixture, ASegmentTheReaderRefusesIsArchivedWithoutAnIndex) {
  Bytes seg = load_wal_capture("pg15-000000010000000000000007.zst");
  seg[0x70A000 - 0x700000] ^= 0x01;  // a page where a record continues: its magic
  Repository r = repo();
  EXPECT_EQ(push_wal(r, put_file(kReal, seg)).outcome, PushOutcome::Stored);
  EXPECT_FALSE(read_wal_index(r, *WalFileName::parse(kReal)));
}

}  // namespace
