// backup-copy (common/backup/copy.h): the plan (which backups, chain order, every backup's manifest last)
// and runs between two repositories in memory (verified objects, interrupted and resumed, corruption at
// the source named, WAL of other content at the destination, another database system).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader
#include <zstd.h>

#include "common/backup/backup.h"
#include "common/backup/copy.h"
#include "common/repo/marks.h"
#include "common/report/verify.h"
#include "support/repo_builder.h"

using namespace pgvault;
using pgvault::testing::ChainBuilder;
using pgvault::testing::FaultStorage;
using pgvault::testing::kSmallSeg;
using pgvault::testing::MemoryStorage;
using pgvault::testing::TempDir;

namespace {

const std::string kF = "20260101T000000Z-F";
const std::string kI = "20260101T010000Z-I";
const std::string kF2 = "20260101T020000Z-F";

// Counts the writers open at once (put() to commit or abort) and logs commits in order. A writer's
// first write waits (up to 2 s, when `overlap` is set) until another writer is open, so copies that can
// overlap do.
class CommitLog final : public Storage {
 public:
  explicit CommitLog(std::unique_ptr<Storage> inner) : inner_(std::move(inner)) {}
  std::string describe() const override { return "log:" + inner_->describe(); }
  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    struct W final : ObjectWriter {
      CommitLog* log;
      std::unique_ptr<ObjectWriter> inner;
      std::string key;
      bool open = true, waited = false;
      void write(ByteView d) override {
        if (!waited) log->wait_for_company(), waited = true;
        inner->write(d);
      }
      void commit() override {
        inner->commit();
        log->closed(this, key, true);
      }
      void abort() noexcept override { log->closed(this, key, false); }
      ~W() override { log->closed(this, key, false); }
    };
    auto w = std::make_unique<W>();
    w->log = this;
    w->inner = inner_->put(key, opts);
    w->key = key;
    std::lock_guard g(mu);
    max_open = std::max(max_open, ++open);
    cv.notify_all();
    return w;
  }
  std::unique_ptr<Source> get(const std::string& k, std::optional<ByteRange> r) override { return inner_->get(k, r); }
  std::optional<ObjectInfo> head(const std::string& k) override { return inner_->head(k); }
  std::vector<ObjectInfo> list(const std::string& p) override { return inner_->list(p); }
  void remove(const std::string& k) override { inner_->remove(k); }

  std::mutex mu;
  std::condition_variable cv;
  int open = 0, max_open = 0;
  bool overlap = false;
  std::vector<std::string> commits;

 private:
  template <class W>
  void closed(W* w, const std::string& key, bool committed) {
    std::lock_guard g(mu);
    if (!w->open) return;
    w->open = false;
    --open;
    if (committed) commits.push_back(key);
  }
  void wait_for_company() {
    std::unique_lock g(mu);
    if (overlap) cv.wait_for(g, std::chrono::seconds(2), [&] { return max_open >= 2; });
  }
  std::unique_ptr<Storage> inner_;
};

struct MemRepo {
  MemoryStorage* mem = nullptr;
  FaultStorage* fault = nullptr;
  CommitLog* log = nullptr;
  std::unique_ptr<Repository> repo;
  explicit MemRepo(Config config = {}) {
    auto s = std::make_unique<MemoryStorage>();
    mem = s.get();
    auto f = std::make_unique<FaultStorage>(std::move(s));
    fault = f.get();
    auto l = std::make_unique<CommitLog>(std::move(f));
    log = l.get();
    repo = std::make_unique<Repository>(std::move(l), config);
    repo->initialise();
  }
};

// A source with WAL segments 1..9 and three backups: F (full), I (incremental of F: unchanged, blocks
// and full entries), F2 (full).
struct Source : MemRepo {
  explicit Source(Config config = {}) : MemRepo(std::move(config)) {
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSmallSeg, ""});
    for (std::uint64_t n = 1; n <= 9; ++n) put_segment(*repo, n);
    ChainBuilder c(*repo, kSmallSeg);
    c.begin(kF);
    c.full("PG_VERSION", "15\n");
    c.full("base/5/1", pgvault::testing::blocks_text(3, 'a'));
    c.commit();
    c.begin(kI, kF);
    c.unchanged("PG_VERSION");
    c.blocks("base/5/1", 3, 3, {{1, std::string(pgvault::testing::kChainBlock, 'z')}}, "");
    c.full("base/5/2", "new");
    c.commit();
    c.begin(kF2);
    c.full("PG_VERSION", "15\n");
    c.commit();
  }
  static void put_segment(Repository& r, std::uint64_t n) {
    r.put_bytes(keys::wal(*WalFileName::parse(segment_file_name(1, n, kSmallSeg))), pgvault::testing::wal_segment(n, 42));
  }
};

std::vector<std::string> labels_of(const Inventory& inv) {
  std::vector<std::string> out;
  for (const auto& b : inv.backups) out.push_back(b.label);
  return out;
}

// The index of the first step of `label` and of its last step.
std::pair<std::size_t, std::size_t> span_of(const CopyPlan& p, const std::string& label) {
  std::size_t first = p.steps.size(), last = 0;
  for (std::size_t i = 0; i < p.steps.size(); ++i) {
    if (p.steps[i].label != label) continue;
    first = std::min(first, i);
    last = i;
  }
  return {first, last};
}

TEST(BackupCopyPlan, EveryMissingBackupOldestFirstEachManifestLast) {
  Source src;
  MemRepo dst;
  CopyPlan p = plan_backup_copy(load_inventory(*src.repo), load_inventory(*dst.repo), std::nullopt, {}, {});
  EXPECT_EQ(p.labels, (std::vector<std::string>{kF, kI, kF2}));
  std::size_t prev_end = 0;
  for (const auto& l : p.labels) {
    auto [first, last] = span_of(p, l);
    EXPECT_GE(first, prev_end) << l << " starts after the backup before it";
    EXPECT_EQ(p.steps[last].kind, CopyStep::Kind::Manifest) << l;
    EXPECT_EQ(p.steps[last].key, keys::backup_manifest(l));
    prev_end = last;
  }
  // F needs segments 2..3 (its start and stop), its bundle, then its manifest.
  auto [f0, f1] = span_of(p, kF);
  std::vector<std::string> f_keys;
  for (std::size_t i = f0; i <= f1; ++i) f_keys.push_back(p.steps[i].key);
  EXPECT_EQ(f_keys, (std::vector<std::string>{keys::wal(*WalFileName::parse(segment_file_name(1, 2, kSmallSeg))),
                                              keys::wal(*WalFileName::parse(segment_file_name(1, 3, kSmallSeg))),
                                              keys::backup_bundle(kF, 0), keys::backup_manifest(kF)}));
}

TEST(BackupCopyPlan, AnIncrementalBringsTheChainMembersTheDestinationLacksParentsFirst) {
  Source src;
  MemRepo dst;
  Inventory s = load_inventory(*src.repo);
  CopyPlan p = plan_backup_copy(s, load_inventory(*dst.repo), kI, {}, {});
  EXPECT_EQ(p.labels, (std::vector<std::string>{kF, kI}));
  EXPECT_LT(span_of(p, kF).second, span_of(p, kI).first);

  // A destination holding F: only I is copied, F is reported present.
  Inventory d;
  d.backups.push_back(s.backups[0]);
  CopyPlan p2 = plan_backup_copy(s, d, std::nullopt, {}, {});
  EXPECT_EQ(p2.labels, (std::vector<std::string>{kI, kF2}));
  EXPECT_EQ(p2.present, (std::vector<std::string>{kF}));
}

TEST(BackupCopyPlan, MissingWalOrBackupIsNamed) {
  Source src;
  MemRepo dst;
  EXPECT_THROW_KIND(plan_backup_copy(load_inventory(*src.repo), load_inventory(*dst.repo), std::string("nope"), {}, {}),
                    ErrorKind::NotFound);
  src.mem->objects.erase(keys::wal(*WalFileName::parse(segment_file_name(1, 3, kSmallSeg))));
  try {
    plan_backup_copy(load_inventory(*src.repo), load_inventory(*dst.repo), kF, {}, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find(segment_file_name(1, 3, kSmallSeg)), std::string::npos) << e.what();
  }
}

TEST(BackupCopyRun, CopiesTheChainVerifiedAndTheCopyVerifies) {
  Source src;
  MemRepo dst;
  CopyResult r = run_backup_copy(*src.repo, *dst.repo, {});
  Inventory d = load_inventory(*dst.repo);
  EXPECT_EQ(labels_of(d), (std::vector<std::string>{kF, kI, kF2}));
  VerifyReport v = verify_repository(*dst.repo, d, VerifyOptions{2, false});
  EXPECT_TRUE(v.problems.empty()) << (v.problems.empty() ? "" : v.problems[0].key + ": " + v.problems[0].message);
  EXPECT_EQ(dst.repo->get_bytes(keys::backup_bundle(kI, 0)), src.repo->get_bytes(keys::backup_bundle(kI, 0)));
  // A second run has nothing to copy.
  CopyResult again = run_backup_copy(*src.repo, *dst.repo, {});
  EXPECT_TRUE(again.plan.labels.empty());
  EXPECT_EQ(again.objects, 0u);
}

TEST(BackupCopyRun, AnInterruptedCopyLeavesNoVisibleBackupAndTheNextRunFinishesIt) {
  Source src;
  MemRepo dst;
  CopyOptions opts;
  opts.label = kF;
  opts.after_step = [](const CopyStep& s) {
    if (s.kind == CopyStep::Kind::Bundle) throw Error(ErrorKind::Interrupted, "stop");
  };
  EXPECT_THROW_KIND(run_backup_copy(*src.repo, *dst.repo, opts), ErrorKind::Interrupted);
  EXPECT_TRUE(dst.mem->objects.count(keys::backup_bundle(kF, 0)));
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_manifest(kF)));
  EXPECT_TRUE(load_inventory(*dst.repo).backups.empty());
  opts.after_step = {};
  run_backup_copy(*src.repo, *dst.repo, opts);
  EXPECT_EQ(labels_of(load_inventory(*dst.repo)), (std::vector<std::string>{kF}));
}

TEST(BackupCopyRun, AKeptBackupIsKeptAtTheDestinationWithItsAnnotations) {
  Source src;
  MemRepo dst;
  BackupMarks kept;
  kept.label = kF;
  kept.keep = true;
  kept.annotations = {{"reason", "deploy-42"}};
  kept.time = "2026-01-01T02:00:00Z";
  write_marks(*src.repo, kept);
  CopyPlan plan = plan_backup_copy(load_inventory(*src.repo), load_inventory(*dst.repo), std::nullopt, {}, {});
  auto [f0, f1] = span_of(plan, kF);
  ASSERT_GT(f1, f0);
  EXPECT_EQ(plan.steps[f1 - 1].key, keys::backup_marks(kF)) << "the marks are written just before the manifest";
  EXPECT_EQ(plan.steps[f1 - 1].kind, CopyStep::Kind::Marks);
  run_backup_copy(*src.repo, *dst.repo, {});
  Inventory d = load_inventory(*dst.repo);
  ASSERT_TRUE(d.marks.count(kF));
  EXPECT_TRUE(d.marks.at(kF).keep);
  EXPECT_EQ(d.marks.at(kF).annotations, kept.annotations);
  EXPECT_FALSE(d.marks.count(kI)) << "a backup without marks gets none";
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_marks(kF2)));
}

// A destination whose own backup F (another backup than the source's F, e.g. a base-push to it in the
// same second) was taken there: same label, other files.
struct DestinationWithAnotherF : MemRepo {
  DestinationWithAnotherF() {
    repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSmallSeg, ""});
    for (std::uint64_t n = 1; n <= 3; ++n) Source::put_segment(*repo, n);
    ChainBuilder c(*repo, kSmallSeg);
    c.begin(kF);
    c.full("PG_VERSION", "15\n");
    c.full("base/5/1", pgvault::testing::blocks_text(3, 'q'));
    c.commit();
  }
};

TEST(BackupCopyPlan, ALabelThatIsAnotherBackupAtTheDestinationIsNotCopiedNorBuiltOn) {
  Source src;
  DestinationWithAnotherF dst;
  Inventory s = load_inventory(*src.repo);
  Inventory d = load_inventory(*dst.repo);
  CopyPlan p = plan_backup_copy(s, d, std::nullopt, {}, {});
  EXPECT_EQ(p.labels, (std::vector<std::string>{kF2}));
  EXPECT_TRUE(p.present.empty());
  ASSERT_EQ(p.conflicts.size(), 2u);
  EXPECT_EQ(p.conflicts[0].label, kF);
  EXPECT_NE(p.conflicts[0].reason.find("another backup under this label"), std::string::npos) << p.conflicts[0].reason;
  EXPECT_EQ(p.conflicts[1].label, kI);  // its parent would be the destination's F
  EXPECT_NE(p.conflicts[1].reason.find("its chain's backup " + kF), std::string::npos) << p.conflicts[1].reason;
  try {
    plan_backup_copy(s, d, kI, {}, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Conflict);
    EXPECT_NE(std::string(e.what()).find(kF), std::string::npos) << e.what();
  }
  // The same backup, with the destination's own stored sizes, is present.
  Inventory same;
  same.backups.push_back(s.backups[0]);
  same.backups[0].stored_bytes += 7;
  for (auto& mb : same.backups[0].bundles) mb.stored_size += 7;
  EXPECT_EQ(plan_backup_copy(s, same, kI, {}, {}).present, (std::vector<std::string>{kF}));
}

TEST(BackupCopyRun, ACollisionIsReportedTheRestCopiedAndTheDestinationsBackupKept) {
  Source src;
  DestinationWithAnotherF dst;
  const Bytes theirs = dst.mem->objects.at(keys::backup_bundle(kF, 0));
  CopyResult r = run_backup_copy(*src.repo, *dst.repo, {});
  EXPECT_EQ(labels_of(load_inventory(*dst.repo)), (std::vector<std::string>{kF, kF2}));
  EXPECT_EQ(dst.mem->objects.at(keys::backup_bundle(kF, 0)), theirs);
  EXPECT_NE(copy_summary_text(r).find("backup " + kI + " was not copied"), std::string::npos) << copy_summary_text(r);
  EXPECT_NE(copy_summary_json(r).find("\"not_copied\""), std::string::npos);
  EXPECT_THROW_KIND(throw_if_not_copied(r), ErrorKind::Conflict);
}

// An incomplete backup of a base-push under a label of the source: a run still going, or interrupted.
void claim_as_base_push(MemRepo& r, const std::string& label) {
  std::string claim = R"({"tool":"base-push","host":"db1","pid":4242,"token":"abc","time":"2026-01-01T02:00:00Z"})";
  write_all(*r.mem, keys::backup_claim(label), as_bytes(claim), {});  // through the store's lock: from a worker
  write_all(*r.mem, keys::backup_bundle(label, 0), Bytes(100, 7), {});
}

TEST(BackupCopyRun, AnIncompleteBackupOfABasePushUnderTheLabelIsLeftAlone) {
  Source src;
  MemRepo dst;
  claim_as_base_push(dst, kF2);
  CopyResult r = run_backup_copy(*src.repo, *dst.repo, {});
  EXPECT_EQ(r.plan.labels, (std::vector<std::string>{kF, kI}));
  ASSERT_EQ(r.plan.conflicts.size(), 1u);
  EXPECT_NE(r.plan.conflicts[0].reason.find("base-push on db1 (pid 4242"), std::string::npos) << r.plan.conflicts[0].reason;
  EXPECT_EQ(dst.mem->objects.at(keys::backup_bundle(kF2, 0)), Bytes(100, 7));
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_manifest(kF2)));
  // Asked for by name: refused before anything is written.
  CopyOptions opts;
  opts.label = kF2;
  EXPECT_THROW_KIND(run_backup_copy(*src.repo, *dst.repo, opts), ErrorKind::Conflict);
}

TEST(BackupCopyRun, AClaimTakenOverBeforeTheManifestCommitsNothing) {
  Source src;
  MemRepo dst;
  CopyOptions opts;
  opts.label = kF;
  opts.after_step = [&](const CopyStep& s) {
    if (s.kind == CopyStep::Kind::Bundle) claim_as_base_push(dst, kF);
  };
  EXPECT_THROW_KIND(run_backup_copy(*src.repo, *dst.repo, opts), ErrorKind::Conflict);
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_manifest(kF)));
}

TEST(BackupCopyClaim, OnlyACopyOfTheSameBackupIsTakenOver) {
  Source src;
  MemRepo dst;
  Inventory s = load_inventory(*src.repo);
  const BackupManifest& f = s.backups[0];
  const BackupManifest& f2 = s.backups[2];
  BackupClaim first = claim_label_for_copy(*dst.mem, f, std::chrono::milliseconds(0));
  EXPECT_TRUE(read_label_claim(*dst.mem, kF)->copies(f));
  EXPECT_FALSE(read_label_claim(*dst.mem, kF)->copies(f2));
  BackupClaim again = claim_label_for_copy(*dst.mem, f, std::chrono::milliseconds(0));  // an interrupted copy
  EXPECT_NE(again.token, first.token);
  EXPECT_FALSE(claim_holds(*dst.mem, first));
  EXPECT_TRUE(claim_holds(*dst.mem, again));
  BackupManifest other = f;  // another backup under the same label
  other.stop_lsn += 1;
  EXPECT_THROW_KIND(claim_label_for_copy(*dst.mem, other, std::chrono::milliseconds(0)), ErrorKind::Conflict);
  claim_as_base_push(dst, kF);
  EXPECT_THROW_KIND(claim_label_for_copy(*dst.mem, f, std::chrono::milliseconds(0)), ErrorKind::Conflict);
  EXPECT_EQ(read_label_claim(*dst.mem, kF)->tool, "base-push");
}

TEST(BackupCopyRun, ACorruptBundleAtTheSourceStopsTheCopyNamingIt) {
  Source src;
  MemRepo dst;
  Bytes& obj = src.mem->objects[keys::backup_bundle(kF, 0)];
  obj[obj.size() / 2] ^= 0x40;
  try {
    run_backup_copy(*src.repo, *dst.repo, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_NE(std::string(e.what()).find(keys::backup_bundle(kF, 0)), std::string::npos) << e.what();
  }
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_bundle(kF, 0))) << "nothing unverified is committed";
  EXPECT_TRUE(load_inventory(*dst.repo).backups.empty());
}

TEST(BackupCopyRun, AFileThatDoesNotMatchItsManifestIsNamed) {
  Source src;
  MemRepo dst;
  // A valid object whose plaintext differs from what the manifest says of base/5/2 (same size).
  Bytes plain = src.repo->get_bytes(keys::backup_bundle(kI, 0));
  plain[plain.size() - 1] ^= 1;
  src.mem->objects.erase(keys::backup_bundle(kI, 0));
  src.repo->put_bytes(keys::backup_bundle(kI, 0), plain);
  try {
    run_backup_copy(*src.repo, *dst.repo, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_NE(std::string(e.what()).find("base/5/2"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_manifest(kI)));
}

TEST(BackupCopyRun, WalOfOtherContentAtTheDestinationIsADuplicateNamingBothDigests) {
  Source src;
  MemRepo dst;
  dst.repo->ensure_identity(Identity{kRepositoryFormat, 42, 15, kSmallSeg, ""});
  const std::string key = keys::wal(*WalFileName::parse(segment_file_name(1, 2, kSmallSeg)));
  Bytes other = pgvault::testing::wal_segment(2, 42);
  other[100] = 1;
  dst.repo->put_bytes(key, other);
  try {
    run_backup_copy(*src.repo, *dst.repo, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Duplicate);
    EXPECT_NE(std::string(e.what()).find(to_hex(sha256(other))), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(to_hex(sha256(pgvault::testing::wal_segment(2, 42)))), std::string::npos);
  }
  // The same content is fine.
  dst.mem->objects.erase(key);
  Source::put_segment(*dst.repo, 2);
  CopyResult r = run_backup_copy(*src.repo, *dst.repo, {});
  // Segment 2, and whatever the first run's other workers copied beside it (parallel copies).
  std::uint64_t present = 0;
  for (const auto& s : r.plan.steps) {
    present += s.at_destination ? 1 : 0;
    if (s.key == key) {
      EXPECT_TRUE(s.at_destination);
    }
  }
  EXPECT_GE(present, 1u);
  EXPECT_EQ(r.wal_present, present);
  EXPECT_EQ(labels_of(load_inventory(*dst.repo)).size(), 3u);
}

TEST(BackupCopyRun, ADestinationOfAnotherSystemIsRefused) {
  Source src;
  MemRepo dst;
  dst.repo->ensure_identity(Identity{kRepositoryFormat, 43, 15, kSmallSeg, ""});
  EXPECT_THROW_KIND(run_backup_copy(*src.repo, *dst.repo, {}), ErrorKind::Foreign);
  EXPECT_TRUE(dst.mem->objects.count(keys::backup_bundle(kF, 0)) == 0);
}

}  // namespace

namespace {

Config parallel_config(int parallel) {
  Config c;
  c.backup.parallel = parallel;
  return c;
}

// Each backup's manifest is committed after every other object of its plan before it.
void expect_manifests_last(const CopyPlan& plan, const std::vector<std::string>& commits) {
  auto pos = [&](const std::string& key) {
    return static_cast<std::size_t>(std::find(commits.begin(), commits.end(), key) - commits.begin());
  };
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    if (plan.steps[i].kind != CopyStep::Kind::Manifest) continue;
    const std::size_t m = pos(plan.steps[i].key);
    ASSERT_LT(m, commits.size()) << plan.steps[i].key << " not committed";
    for (std::size_t j = 0; j < i; ++j) {
      EXPECT_LT(pos(plan.steps[j].key), m) << plan.steps[j].key << " after " << plan.steps[i].key;
    }
  }
}

TEST(BackupCopyParallel, ObjectsOverlapEveryManifestIsCommittedLastAndTheCopyVerifies) {
  Source src;
  MemRepo dst(parallel_config(4));
  dst.log->overlap = true;
  CopyResult r = run_backup_copy(*src.repo, *dst.repo, {});
  EXPECT_GE(dst.log->max_open, 2) << "objects copied one at a time";
  expect_manifests_last(r.plan, dst.log->commits);
  Inventory d = load_inventory(*dst.repo);
  EXPECT_EQ(labels_of(d).size(), 3u);
  VerifyReport v = verify_repository(*dst.repo, d, VerifyOptions{2, false});
  EXPECT_TRUE(v.problems.empty()) << (v.problems.empty() ? "" : v.problems[0].key + ": " + v.problems[0].message);
}

TEST(BackupCopyParallel, ACorruptSegmentAmongParallelCopiesFailsNamingItAndNoBackupIsVisible) {
  Source src;
  MemRepo dst(parallel_config(4));
  const std::string key = keys::wal(*WalFileName::parse(segment_file_name(1, 3, kSmallSeg)));
  Bytes& obj = src.mem->objects[key];
  obj[obj.size() - 60] ^= 0x01;  // the last bytes of the body: found only when the object is read to its end
  try {
    run_backup_copy(*src.repo, *dst.repo, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
  EXPECT_FALSE(dst.mem->objects.count(key)) << "nothing unverified is committed";
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_manifest(kF)));
  EXPECT_TRUE(load_inventory(*dst.repo).backups.empty());
}

// Encryption with the key in `dir`/key (a key file; the same file gives the same key).
Config encrypted(const TempDir& dir, Compression c = Compression::Zstd) {
  const std::string keyfile = dir.path() + "/key";
  std::ofstream(keyfile) << "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
  ::chmod(keyfile.c_str(), 0600);
  Config config;
  config.compression.method = c;
  config.encryption.method = Encryption::Aes256Gcm;
  config.encryption.key_file = keyfile;
  return config;
}

TEST(BackupCopyStoredBytes, TheSameKeyAndCompressionCopyTheStoredBytesVerified) {
  TempDir dir;
  Source src(encrypted(dir));
  MemRepo dst(encrypted(dir));
  // One object of an older stored form (no compression): re-encoded into the destination's form.
  const std::string old_key = keys::wal(*WalFileName::parse(segment_file_name(1, 2, kSmallSeg)));
  EncodeOptions plain_form;
  plain_form.compression = Compression::None;
  plain_form.key = src.repo->read_key();
  plain_form.bound_name = old_key;
  src.mem->objects[old_key] = encode_bytes(pgvault::testing::wal_segment(2, 42), plain_form);
  run_backup_copy(*src.repo, *dst.repo, {});
  // A fresh encoding draws a new salt: equal bytes mean the stored bytes were copied.
  EXPECT_EQ(dst.mem->objects.at(keys::backup_bundle(kI, 0)), src.mem->objects.at(keys::backup_bundle(kI, 0)));
  EXPECT_NE(dst.mem->objects.at(old_key), src.mem->objects.at(old_key));
  EXPECT_EQ(dst.repo->get_bytes(old_key), pgvault::testing::wal_segment(2, 42));
  Inventory d = load_inventory(*dst.repo);
  VerifyReport v = verify_repository(*dst.repo, d, VerifyOptions{2, false});
  EXPECT_TRUE(v.problems.empty()) << (v.problems.empty() ? "" : v.problems[0].key + ": " + v.problems[0].message);
}

TEST(BackupCopyStoredBytes, OtherSettingsAtTheDestinationReencode) {
  TempDir dir;
  Source src(encrypted(dir));
  MemRepo dst;  // no encryption
  run_backup_copy(*src.repo, *dst.repo, {});
  const std::string key = keys::backup_bundle(kI, 0);
  EXPECT_NE(dst.mem->objects.at(key), src.mem->objects.at(key));
  EXPECT_EQ(decode_bytes(dst.mem->objects.at(key), nullptr, key, key), src.repo->get_bytes(key));
  // Re-encoded with the repository's zstd window (kEncodeWindowLog), as base-push and wal-push write
  // theirs (a 1 MiB segment).
  std::string seg;
  for (std::uint64_t n = 1; n <= 9 && seg.empty(); ++n) {
    std::string k = keys::wal(*WalFileName::parse(segment_file_name(1, n, kSmallSeg)));
    if (dst.mem->objects.count(k)) seg = k;
  }
  ASSERT_FALSE(seg.empty()) << "no segment copied";
  const Bytes& stored = dst.mem->objects.at(seg);
  ZSTD_frameHeader h{};
  ASSERT_EQ(ZSTD_getFrameHeader(&h, stored.data() + kObjectHeaderSize, stored.size() - kObjectHeaderSize), 0u);
  EXPECT_EQ(h.windowSize, 1ull << kEncodeWindowLog);
}

TEST(BackupCopyStoredBytes, ACorruptObjectIsNotCommittedInStoredForm) {
  TempDir dir;
  Source src(encrypted(dir));
  MemRepo dst(encrypted(dir));
  Bytes& obj = src.mem->objects[keys::backup_bundle(kF, 0)];
  obj[obj.size() - 60] ^= 0x01;
  EXPECT_THROW_KIND(run_backup_copy(*src.repo, *dst.repo, {}), ErrorKind::Corruption);
  EXPECT_FALSE(dst.mem->objects.count(keys::backup_bundle(kF, 0)));
  EXPECT_TRUE(load_inventory(*dst.repo).backups.empty());
}

}  // namespace
