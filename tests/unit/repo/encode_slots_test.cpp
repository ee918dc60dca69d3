// Repository::set_encode_slots: an object encodes under a slot, and its commit runs without it.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "common/base/errors.h"
#include "common/repo/repo.h"
#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::MemoryStorage;

namespace {

// A MemoryStorage whose writers note, at every write and at commit, whether a slot was free.
class ProbeStorage : public MemoryStorage {
 public:
  explicit ProbeStorage(EncodeSlots& slots) : slots_(slots) {}
  std::vector<bool> free_at_write;
  std::optional<bool> free_at_commit;
  bool fail_commit = false;

  bool slot_free() {
    if (!slots_.try_acquire()) return false;
    slots_.release();
    return true;
  }

  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    struct W final : ObjectWriter {
      ProbeStorage* p = nullptr;
      std::unique_ptr<ObjectWriter> inner;
      void write(ByteView d) override {
        p->free_at_write.push_back(p->slot_free());
        inner->write(d);
      }
      void commit() override {
        p->free_at_commit = p->slot_free();
        if (p->fail_commit) throw Error(ErrorKind::Transient, "upload failed");
        inner->commit();
      }
      void abort() noexcept override { inner->abort(); }
    };
    auto w = std::make_unique<W>();
    w->p = this;
    w->inner = MemoryStorage::put(key, opts);
    return w;
  }

 private:
  EncodeSlots& slots_;
};

// A source that fails after its first read.
class FailingSource final : public Source {
 public:
  std::size_t read(std::span<std::uint8_t> buf) override {
    if (reads_++ > 0) throw Error(ErrorKind::InvalidInput, "read failed");
    std::fill(buf.begin(), buf.end(), std::uint8_t{7});
    return buf.size();
  }

 private:
  int reads_ = 0;
};

struct Fixture {
  EncodeSlots slots{1};
  ProbeStorage* probe = nullptr;
  std::optional<Repository> repo;
  Fixture() {
    auto s = std::make_unique<ProbeStorage>(slots);
    probe = s.get();
    repo.emplace(std::move(s), Config{});
    repo->set_encode_slots(&slots);
  }
};

}  // namespace

TEST(EncodeSlotsTest, EncodingHoldsTheSlotAndTheCommitRunsWithoutIt) {
  Fixture f;
  Bytes body(3 << 20, std::uint8_t{1});
  f.repo->put_bytes("a", body);
  ASSERT_FALSE(f.probe->free_at_write.empty());
  for (bool free : f.probe->free_at_write) EXPECT_FALSE(free) << "a write ran without the slot held";
  ASSERT_TRUE(f.probe->free_at_commit.has_value());
  EXPECT_TRUE(*f.probe->free_at_commit) << "the commit ran with the slot still held";
  EXPECT_TRUE(f.probe->slot_free());
  EXPECT_EQ(f.repo->get_bytes("a"), body);
}

TEST(EncodeSlotsTest, AFailedCommitOrReadGivesTheSlotBack) {
  Fixture f;
  f.probe->fail_commit = true;
  EXPECT_THROW_KIND(f.repo->put_bytes("a", Bytes(1000, 1)), ErrorKind::Transient);
  EXPECT_TRUE(f.probe->slot_free());
  f.probe->fail_commit = false;
  FailingSource bad;
  EXPECT_THROW_KIND(f.repo->put_object("b", bad), ErrorKind::InvalidInput);
  EXPECT_TRUE(f.probe->slot_free());
  f.repo->put_bytes("c", Bytes(1000, 2));  // the one slot is there for the next object
  EXPECT_EQ(f.repo->get_bytes("c"), Bytes(1000, 2));
}

TEST(EncodeSlotsTest, WithoutSlotsNothingIsBounded) {
  EncodeSlots other{0};  // no permit: a Repository without slots must not wait for one
  auto s = std::make_unique<ProbeStorage>(other);
  ProbeStorage* probe = s.get();
  Repository repo(std::move(s), Config{});
  repo.put_bytes("a", Bytes(1000, 3));
  ASSERT_TRUE(probe->free_at_commit.has_value());
  EXPECT_EQ(repo.get_bytes("a"), Bytes(1000, 3));
}
