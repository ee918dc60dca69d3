// Storage::get_tail(): the end of one object version and its size in one read (fs and the default), and
// Repository::stored_digest() built on it (no HEAD that could describe another version).
#include <gtest/gtest.h>

#include "common/codec/codec.h"
#include "common/repo/repo.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::FaultStorage;
using testing::MemoryStorage;
using testing::TempDir;

ErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::Internal;
}

void check_tails(Storage& s) {
  write_all(s, "a/obj", as_bytes("0123456789"));
  write_all(s, "a/empty", {});
  auto t = s.get_tail("a/obj", 4);
  EXPECT_EQ(t.size, 10u);
  EXPECT_EQ(std::string(t.bytes.begin(), t.bytes.end()), "6789");
  t = s.get_tail("a/obj", 48);  // longer than the object: all of it
  EXPECT_EQ(t.size, 10u);
  EXPECT_EQ(std::string(t.bytes.begin(), t.bytes.end()), "0123456789");
  t = s.get_tail("a/empty", 48);
  EXPECT_EQ(t.size, 0u);
  EXPECT_TRUE(t.bytes.empty());
  EXPECT_EQ(kind_of([&] { s.get_tail("a/missing", 4); }), ErrorKind::NotFound);
}

TEST(StorageTail, Fs) {
  TempDir dir;
  auto s = make_fs_storage(dir / "repo");
  check_tails(*s);
}

TEST(StorageTail, DefaultReadsOneStream) {
  MemoryStorage s;
  check_tails(s);
}

TEST(StorageTail, StoredDigestNeedsNoHead) {
  // A HEAD then a ranged GET can pair the size of one version with the trailer of a newer one; the
  // digest must come from one read.
  auto fault = std::make_unique<FaultStorage>(std::make_unique<MemoryStorage>());
  auto* f = fault.get();
  Repository repo(std::move(fault), Config{});
  repo.put_bytes("obj", as_bytes("some content"));
  f->fail = [](const std::string& op, const std::string& key) {
    if (op == "head") throw Error(ErrorKind::Internal, "head " + key + " must not be used");
  };
  Digest d = repo.stored_digest("obj");
  EXPECT_EQ(d.size, 12u);
  EXPECT_EQ(kind_of([&] { repo.stored_digest("missing"); }), ErrorKind::NotFound);
}

}  // namespace
}  // namespace pgvault
