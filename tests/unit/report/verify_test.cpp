// verify_repository over an in-memory repository: which problems it reports for which damage, and which
// errors stop it.
#include "common/report/verify.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/repo_builder.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::has_problem;
using testing::kSmallSeg;
using testing::VerifyRepo;

TEST(InventoryVerifyTest, CleanRepositoryHasNoProblems) {
  VerifyRepo v;
  VerifyReport r = v.verify();
  EXPECT_TRUE(r.problems.empty()) << r.problems.front().key << ": " << r.problems.front().message;
  EXPECT_EQ(r.objects, 1u + 1u + 8u);  // manifest, bundle, segments
}

TEST(InventoryVerifyTest, ReportsMissingSegmentOnTheBackupsPath) {
  VerifyRepo v;
  v.mem->objects.erase(v.seg_key_small(5));
  v.mem->objects.erase(v.seg_key_small(1));  // before the backup: not a problem
  VerifyReport r = v.verify();
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].key, v.seg_key_small(5));
  EXPECT_EQ(r.problems[0].kind, "missing");
}

TEST(InventoryVerifyTest, ReportsDamagedObjectsAndFiles) {
  VerifyRepo v;
  const std::string good = v.m.files[2].crc32c;
  v.m.files[2].crc32c = "ffffffff";
  v.put_segment(6, 43);                              // another database system
  auto& seg7 = v.mem->objects[v.seg_key_small(7)];  // bit rot in a stored segment
  seg7[seg7.size() / 2] ^= 1;
  VerifyReport r = v.verify();
  std::string bundle = keys::backup_bundle(v.m.label, 0);
  EXPECT_TRUE(has_problem(r, bundle, "file base/1/1259: CRC-32C " + good + ", manifest says ffffffff"))
      << r.problems.size();
  EXPECT_TRUE(has_problem(r, v.seg_key_small(6), "database system 43"));
  EXPECT_TRUE(has_problem(r, v.seg_key_small(7), ""));
  EXPECT_EQ(r.problems.size(), 3u);

  v.mem->objects.erase(bundle);
  VerifyReport r2 = v.verify();
  EXPECT_TRUE(has_problem(r2, bundle, "missing"));
}

TEST(InventoryVerifyTest, Format1ManifestIsVerifiedWithSha256) {
  VerifyRepo v(true);
  VerifyReport clean = v.verify();
  EXPECT_TRUE(clean.problems.empty()) << clean.problems.front().key << ": " << clean.problems.front().message;
  // One byte of base/1/1259 changed in a bundle that is itself a valid object (and the manifest's bundle
  // digest updated to match): only the per-file SHA-256 can tell.
  std::string bundle = keys::backup_bundle(v.m.label, 0);
  Bytes plain = v.repo->get_bytes(bundle);
  plain[v.m.files[2].offset + 10] = 'y';
  v.mem->objects.erase(bundle);
  v.repo->put_bytes(bundle, plain);
  v.m.bundles[0] = {0, plain.size(), v.mem->objects[bundle].size(), to_hex(sha256(plain))};
  VerifyReport r = v.verify();
  ASSERT_EQ(r.problems.size(), 1u);
  std::string changed = std::string(10, 'x') + "y" + std::string(5000 - 11, 'x');
  EXPECT_TRUE(has_problem(r, bundle, "file base/1/1259: SHA-256 " + to_hex(sha256(as_bytes(changed))) +
                                         ", manifest says " + v.m.files[2].sha256))
      << r.problems[0].message;
}

// Every problem as "<kind> <key>: <message>", in the report's order.
std::vector<std::string> lines(const VerifyReport& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems) out.push_back(p.kind + " " + p.key + ": " + p.message);
  return out;
}

// base/1/1259 as stored in bundle 0 (offset 3, 5000 bytes of 'x'), with `at` changed to 'y'.
std::string changed_1259(std::size_t at) {
  std::string s(5000, 'x');
  s[at] = 'y';
  return s;
}

TEST(VerifyTest, FlippedStoredByteIsACorruptionOfThatBundle) {
  VerifyRepo v;
  auto& stored = v.mem->objects[v.bundle_key()];
  stored[stored.size() / 2] ^= 0x01;
  VerifyReport r = v.verify();
  ASSERT_EQ(r.problems.size(), 1u) << ::testing::PrintToString(lines(r));
  EXPECT_EQ(r.problems[0].key, v.bundle_key());
  EXPECT_EQ(r.problems[0].kind, "corruption");
}

TEST(VerifyTest, ChangedByteInsideABundleNamesTheFile) {
  VerifyRepo v;
  Bytes plain = v.repo->get_bytes(v.bundle_key());
  plain[v.m.files[2].offset + 10] = 'y';
  v.replace_bundle(plain);
  VerifyReport r = v.verify();
  const std::string at = "corruption " + v.bundle_key() + ": backup " + v.m.label + ": ";
  EXPECT_EQ(lines(r), (std::vector<std::string>{
                          at + "file base/1/1259: CRC-32C " + crc32c_hex(crc32c(as_bytes(changed_1259(10)))) +
                              ", manifest says " + v.m.files[2].crc32c,
                          at + "plaintext SHA-256 " + to_hex(sha256(plain)) + ", manifest says " + v.m.bundles[0].sha256,
                      }));
}

TEST(VerifyTest, ShortBundleEndsInsideAFile) {
  VerifyRepo v;
  Bytes plain = v.repo->get_bytes(v.bundle_key());
  plain.resize(plain.size() - 1000);
  v.replace_bundle(plain);
  VerifyReport r = v.verify();
  const std::string at = "corruption " + v.bundle_key() + ": backup " + v.m.label + ": ";
  EXPECT_EQ(lines(r), (std::vector<std::string>{
                          at + "ends after 4003 bytes, inside file base/1/1259",
                          at + "plaintext SHA-256 " + to_hex(sha256(plain)) + ", manifest says " + v.m.bundles[0].sha256,
                          at + "plaintext size 4003, manifest says 5003",
                      }));
}

TEST(VerifyTest, ExtraBytesAfterTheLastFileAreASizeProblemOnly) {
  VerifyRepo v;
  Bytes plain = v.repo->get_bytes(v.bundle_key());
  plain.push_back('z');
  v.replace_bundle(plain);
  VerifyReport r = v.verify();
  const std::string at = "corruption " + v.bundle_key() + ": backup " + v.m.label + ": ";
  EXPECT_EQ(lines(r), (std::vector<std::string>{
                          at + "plaintext SHA-256 " + to_hex(sha256(plain)) + ", manifest says " + v.m.bundles[0].sha256,
                          at + "plaintext size 5004, manifest says 5003",
                      }));
}

TEST(VerifyTest, MissingBundleIsMissing) {
  VerifyRepo v;
  v.mem->objects.erase(v.bundle_key());
  VerifyReport r = v.verify();
  EXPECT_EQ(lines(r), (std::vector<std::string>{"missing " + v.bundle_key() + ": backup " + v.m.label +
                                                ": bundle named by the manifest is missing"}));
}

TEST(VerifyTest, StoredSizeDifferentFromTheManifestIsAMismatch) {
  VerifyRepo v;
  const std::uint64_t stored = v.m.bundles[0].stored_size;
  v.m.bundles[0].stored_size = stored + 1;
  VerifyReport r = v.verify();
  EXPECT_EQ(lines(r), (std::vector<std::string>{"mismatch " + v.bundle_key() + ": backup " + v.m.label +
                                                ": stored size " + std::to_string(stored) + ", manifest says " +
                                                std::to_string(stored + 1)}));
}

// Errors reading an object: NotFound (listed, then gone) is "missing", Auth is "corruption", anything
// else (the storage is unwell) ends the verification without a verdict.
TEST(VerifyTest, ReadErrorsAreProblemsOrFatalByKind) {
  VerifyRepo v;
  v.write_manifest_once();
  Inventory inv = load_inventory(*v.repo);
  std::map<std::string, ErrorKind> failing = {{v.seg_key_small(4), ErrorKind::NotFound},
                                              {v.seg_key_small(5), ErrorKind::Auth}};
  v.fault->fail = [&](const std::string& op, const std::string& key) {
    auto it = failing.find(key);
    if (op == "get" && it != failing.end()) throw Error(it->second, key + ": refused");
  };
  VerifyReport r = verify_repository(*v.repo, inv, VerifyOptions{2, false});
  EXPECT_EQ(lines(r), (std::vector<std::string>{"missing " + v.seg_key_small(4) + ": " + v.seg_key_small(4) + ": refused",
                                                "corruption " + v.seg_key_small(5) + ": " + v.seg_key_small(5) + ": refused"}));
  EXPECT_EQ(r.objects, 10u);  // the two count as read: they were tried, and reported

  failing[v.seg_key_small(6)] = ErrorKind::Io;
  EXPECT_THROW_KIND(verify_repository(*v.repo, inv, VerifyOptions{2, false}), ErrorKind::Io);
  failing[v.seg_key_small(6)] = ErrorKind::Transient;
  EXPECT_THROW_KIND(verify_repository(*v.repo, inv, VerifyOptions{1, false}), ErrorKind::Transient);
}

// verify reads each manifest again for its file entries (the inventory holds heads): one removed or
// replaced since the listing (a prune or a copy beside) is a problem of that manifest, not a verdict on
// nothing, and the rest is still verified.
TEST(VerifyTest, AManifestGoneOrChangedSinceTheListingIsAProblem) {
  VerifyRepo v;
  v.write_manifest_once();
  Inventory inv = load_inventory(*v.repo);
  const std::string manifest = keys::backup_manifest(v.m.label);
  const Bytes stored = v.mem->objects.at(manifest);
  v.mem->objects.erase(manifest);
  VerifyReport gone = verify_repository(*v.repo, inv, VerifyOptions{2, false});
  ASSERT_EQ(gone.problems.size(), 1u) << lines(gone).front();
  EXPECT_EQ(gone.problems[0].key, manifest);
  EXPECT_EQ(gone.problems[0].kind, "missing");
  EXPECT_EQ(gone.objects, 1u + 8u);  // the manifest (listed) and the segments; not the bundle

  BackupManifest other = v.m;
  other.stop_time = "2026-01-01T00:09:00Z";
  v.repo->put_bytes(manifest, as_bytes(other.to_json()));
  VerifyReport changed = verify_repository(*v.repo, inv, VerifyOptions{2, false});
  ASSERT_EQ(changed.problems.size(), 1u) << lines(changed).front();
  EXPECT_EQ(changed.problems[0].kind, "corruption");
  EXPECT_NE(changed.problems[0].message.find("changed since"), std::string::npos) << changed.problems[0].message;

  v.mem->objects[manifest] = stored;
  EXPECT_TRUE(verify_repository(*v.repo, inv, VerifyOptions{2, false}).problems.empty());
}

TEST(VerifyTest, ProgressLineCountsObjects) {
  VerifyRepo v;
  ::testing::internal::CaptureStderr();
  VerifyReport r = v.verify(VerifyOptions{2, true});
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(r.problems.empty());
  // "verifying: <done> of 9 objects, <bytes>" (bundle and segments; <done> is whatever the last redraw
  // saw), erased at the end.
  EXPECT_NE(err.find("\rverifying: "), std::string::npos) << err;
  EXPECT_NE(err.find(" of 9 objects, "), std::string::npos) << err;
  ASSERT_FALSE(err.empty());
  EXPECT_EQ(err.back(), '\r');
  ::testing::internal::CaptureStderr();
  v.verify(VerifyOptions{2, false});
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}
}  // namespace
}  // namespace pgvault
