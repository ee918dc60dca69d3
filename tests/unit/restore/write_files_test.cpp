// Restore's bundle writing on the TaskGroup: the first failure wins, and the other bundles end early.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/base/direct_write.h"
#include "common/base/format.h"
#include "restore/restore_fixture.h"
#include "support/page_cache.h"
#include "support/sync_fakes.h"

namespace pgvault {
namespace {

using namespace restore_test;

// A storage over another (not owned): get() of bundle 1 fails once the big bundle 2 is being read, and
// bundle 2 is read in small pieces, pausing after its first until that failure has been thrown.
class RaceStorage : public Storage {
 public:
  RaceStorage(Storage& inner, std::string failing, std::string big)
      : inner_(inner), failing_(std::move(failing)), big_(std::move(big)) {}

  std::string describe() const override { return inner_.describe(); }
  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    return inner_.put(key, opts);
  }
  std::optional<ObjectInfo> head(const std::string& key) override { return inner_.head(key); }
  std::vector<ObjectInfo> list(const std::string& prefix) override { return inner_.list(prefix); }
  void remove(const std::string& key) override { inner_.remove(key); }

  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override {
    if (key == failing_) {
      wait_for(big_started_);
      set(failed_);
      throw Error(ErrorKind::Corruption, "injected failure");
    }
    auto src = inner_.get(key, range);
    if (key != big_) return src;
    return std::make_unique<Slow>(std::move(src), *this);
  }

  bool big_read_to_the_end() const { return big_eof_.load(); }

 private:
  struct Slow : Source {
    Slow(std::unique_ptr<Source> s, RaceStorage& o) : src(std::move(s)), owner(o) {}
    std::size_t read(std::span<std::uint8_t> buf) override {
      if (reads++ == 1) {
        owner.set(owner.big_started_);
        owner.wait_for(owner.failed_);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the failure reaches the group
      }
      std::size_t n = src->read(buf.first(std::min<std::size_t>(buf.size(), 16 << 10)));
      if (n == 0) owner.big_eof_ = true;
      return n;
    }
    std::unique_ptr<Source> src;
    RaceStorage& owner;
    int reads = 0;
  };

  void set(bool& flag) {
    std::lock_guard g(mu_);
    flag = true;
    cv_.notify_all();
  }
  void wait_for(bool& flag) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(10), [&] { return flag; });
  }

  Storage& inner_;
  std::string failing_, big_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool big_started_ = false, failed_ = false;
  std::atomic<bool> big_eof_{false};
};

RestoreOptions options(Fixture& fx, int parallel) {
  RestoreOptions o = fx.options();
  o.parallel = parallel;
  o.tablespace_map = {{fx.tmp / "ts-orig", fx.tmp / "ts-new"}};
  return o;
}

void expect_failure(Repository& repo, const RestoreOptions& o, ErrorKind kind, const std::string& message) {
  try {
    run_restore(repo, o);
    ADD_FAILURE() << "restored";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_EQ(std::string(e.what()), message);
  }
}

// run_restore fails with `kind` and a message holding each of `parts`.
void expect_failure_with(Repository& repo, const RestoreOptions& o, ErrorKind kind,
                         const std::vector<std::string>& parts) {
  try {
    run_restore(repo, o);
    ADD_FAILURE() << "restored";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(RestoreWriteTest, FirstFailureWinsAndOtherBundlesEndEarly) {
  Fixture fx;
  std::string big(4u << 20, '\0');
  std::uint32_t x = 1;
  for (auto& c : big) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 24);  // incompressible
  fx.add_bundle(2, {{"base/5/big", big}});
  fx.commit();
  auto storage = std::make_unique<RaceStorage>(*fx.mem, keys::backup_bundle(fx.m.label, 1),
                                               keys::backup_bundle(fx.m.label, 2));
  RaceStorage* race = storage.get();
  Repository repo(std::move(storage), fx.repo->config());
  RestoreOptions o = options(fx, 2);
  // The bundle's error, not the Interrupted of the stopped one; named as before the TaskGroup.
  expect_failure(repo, o, ErrorKind::Corruption,
                 "backup " + fx.m.label + ": file tablespace_map (bundle bundle-000001): injected failure");
  EXPECT_FALSE(race->big_read_to_the_end());
  EXPECT_FALSE(exists(o.pgdata));
}

// With one worker, no bundle starts after one failed.
TEST(RestoreWriteTest, NoBundleStartsAfterAFailure) {
  Fixture fx;
  fx.commit();
  auto mem = std::make_unique<testing::MemoryStorage>();
  mem->objects = fx.mem->objects;
  auto fault = std::make_unique<testing::FaultStorage>(std::move(mem));
  const std::string first = keys::backup_bundle(fx.m.label, 0), second = keys::backup_bundle(fx.m.label, 1);
  int second_gets = 0;
  fault->fail = [&](const std::string& op, const std::string& key) {
    if (op == "get" && key == first) throw Error(ErrorKind::Transient, "injected failure");
    if (op == "get" && key == second) ++second_gets;
  };
  Repository repo(std::move(fault), fx.repo->config());
  RestoreOptions o = options(fx, 1);
  expect_failure(repo, o, ErrorKind::Transient,
                 "backup " + fx.m.label + ": file PG_VERSION (bundle bundle-000000): injected failure");
  EXPECT_EQ(second_gets, 0);
  EXPECT_FALSE(exists(o.pgdata));
}

// Workers take the bundle with the most bytes first (one thread decodes a bundle: a large table's is the
// critical path), then by index: here bundle 2 (200 KB), 0 (78 KB), 1 (40 bytes).
TEST(RestoreWriteTest, TheBundleWithTheMostBytesIsTakenFirst) {
  Fixture fx;
  fx.add_bundle(2, {{"base/5/big", std::string(200000, 'b')}});
  fx.commit();
  auto mem = std::make_unique<testing::MemoryStorage>();
  mem->objects = fx.mem->objects;
  auto fault = std::make_unique<testing::FaultStorage>(std::move(mem));
  std::vector<std::string> order;
  fault->fail = [&](const std::string& op, const std::string& key) {
    for (std::uint64_t b = 0; b < 3; ++b) {
      if (op == "get" && key == keys::backup_bundle(fx.m.label, b)) order.push_back(key.substr(key.rfind('/') + 1));
    }
  };
  Repository repo(std::move(fault), fx.repo->config());
  RestoreOptions o = options(fx, 1);
  run_restore(repo, o);
  EXPECT_EQ(order, (std::vector<std::string>{"bundle-000002", "bundle-000000", "bundle-000001"}));
  EXPECT_EQ(slurp(o.pgdata + "/base/5/big"), std::string(200000, 'b'));
}

// 64 MiB and one byte, every 8 KiB block different (a file cut or put together in the wrong order
// fails its checksum), compressible.
std::string large_file() {
  std::string s((64u << 20) + 1, 'l');
  for (std::size_t at = 0; at < s.size(); at += 8192) {
    const std::string n = std::to_string(at / 8192);
    s.replace(at, std::min(n.size(), s.size() - at), n.substr(0, s.size() - at));
  }
  return s;
}

// The thread that called get() for each bundle.
std::unique_ptr<testing::FaultStorage> storage_noting_threads(Fixture& fx, std::mutex& mu,
                                                              std::map<std::string, std::thread::id>& threads) {
  auto mem = std::make_unique<testing::MemoryStorage>();
  mem->objects = fx.mem->objects;
  auto fault = std::make_unique<testing::FaultStorage>(std::move(mem));
  fault->fail = [&](const std::string& op, const std::string& key) {
    if (op != "get" || key.find("/bundle-") == std::string::npos) return;
    std::lock_guard g(mu);
    threads[key.substr(key.rfind('/') + 1)] = std::this_thread::get_id();
  };
  return fault;
}

// A bundle holding 64 MiB or more (a large table's) is read and decoded in a thread of its own while the
// task's thread writes its files: with one worker, the small bundles are read on the worker's thread and
// the large one on another. Its file arrives whole.
TEST(RestoreWriteTest, ALargeBundleIsDecodedBesideTheThreadWritingItsFiles) {
  Fixture fx;
  const std::string big = large_file();
  fx.add_bundle(2, {{"base/5/big", big}});
  fx.commit();
  std::mutex mu;
  std::map<std::string, std::thread::id> threads;
  Repository repo(storage_noting_threads(fx, mu, threads), fx.repo->config());
  RestoreOptions o = options(fx, 1);
  run_restore(repo, o);
  ASSERT_EQ(threads.size(), 3u);
  EXPECT_EQ(threads["bundle-000000"], threads["bundle-000001"]);
  EXPECT_NE(threads["bundle-000002"], threads["bundle-000000"]);
  EXPECT_TRUE(slurp(o.pgdata + "/base/5/big") == big);  // not EXPECT_EQ: 64 MiB in a failure message
  EXPECT_EQ(slurp(o.pgdata + "/base/5/1259"), std::string(70000, 'a'));
}

// The large bundle's files are written before its digest is known: a bundle whose plaintext digest
// differs from its trailer's fails the restore (the decoder's error, not the writer's Interrupted),
// names the backup and the bundle, and leaves nothing.
TEST(RestoreWriteTest, ALargeBundleFailingItsDigestLeavesNothing) {
  Fixture fx;
  fx.add_bundle(2, {{"base/5/big", large_file()}});
  fx.commit();
  auto& obj = fx.mem->objects[keys::backup_bundle(fx.m.label, 2)];
  obj[obj.size() - 48] ^= 0x01;  // the first byte of the trailer's SHA-256 (docs/FORMAT.md 1.6)
  RestoreOptions o = options(fx, 2);
  expect_failure_with(*fx.repo, o, ErrorKind::Corruption,
                      {"backup " + fx.m.label + ": ", "bundle-000002", "plaintext digest mismatch"});
  EXPECT_FALSE(exists(o.pgdata));
}

// The restore checks what reached each file, not only what passed its checksum on the way: direct
// writes that claim success but leave the file short (a lost write) fail the restore, naming the file,
// and leave nothing. Where the filesystem does not take O_DIRECT the lost write cannot be injected here.
TEST(RestoreWriteTest, AFileShorterThanWrittenFailsTheRestore) {
  Fixture fx;
  if (!testing::takes_direct_io(fx.tmp.path())) GTEST_SKIP() << fx.tmp.path() << " does not take O_DIRECT";
  fx.add_bundle(2, {{"base/5/big", std::string((20u << 20) + 100, 'q')}});
  fx.commit();
  testing::FakeSync fake(true);  // syncfs covers the data directory: large files go direct
  struct LostWrites {
    LostWrites() {
      DirectFileWriter::direct_write_call = [](int, const void*, std::size_t n) { return static_cast<ssize_t>(n); };
    }
    ~LostWrites() { DirectFileWriter::direct_write_call = ::write; }
  } lost;
  RestoreOptions o = options(fx, 2);
  expect_failure_with(*fx.repo, o, ErrorKind::Io, {"base/5/big has 100 bytes once written, the manifest says 20971620"});
  EXPECT_FALSE(exists(o.pgdata));
}

// The progress line (a terminal): the backup, the bytes written of the total; erased at the end.
TEST(RestoreWriteTest, ProgressLineCountsTheBytesWritten) {
  Fixture fx;
  fx.commit();
  RestoreOptions o = options(fx, 2);
  o.progress = true;
  ::testing::internal::CaptureStderr();
  run_restore(*fx.repo, o);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("\rrestoring " + fx.m.label + ": "), std::string::npos) << err;
  std::uint64_t total = 0;
  for (const auto& f : fx.m.files) total += f.size;
  EXPECT_NE(err.find(" / " + human_bytes(static_cast<double>(total)) + " ("), std::string::npos) << err;
  EXPECT_EQ(err.back(), '\r') << "the line is erased at the end: " << err;
}

}  // namespace
}  // namespace pgvault
