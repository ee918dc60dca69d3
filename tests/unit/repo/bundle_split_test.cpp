#include "common/repo/bundle_split.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/pg/crc32c.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

ManifestFile file(std::string path, std::uint64_t offset, const std::string& content) {
  ManifestFile f;
  f.path = std::move(path);
  f.offset = offset;
  f.size = content.size();
  f.crc32c = crc32c_hex(crc32c_extend(0, as_bytes(content)));
  return f;
}

struct Recorder : BundleVisitor {
  std::vector<std::string> events;
  std::map<std::string, std::string> content;
  void on_begin(const ManifestFile& f) override { events.push_back("begin " + f.path); }
  void on_data(const ManifestFile& f, ByteView part) override {
    content[f.path].append(reinterpret_cast<const char*>(part.data()), part.size());
  }
  void on_end(const ManifestFile& f, const std::string& mismatch) override {
    events.push_back("end " + f.path + (mismatch.empty() ? "" : " bad"));
  }
  void on_extra(std::uint64_t pos) override { events.push_back("extra " + std::to_string(pos)); }
  void on_truncated(std::uint64_t pos, const ManifestFile& f) override {
    events.push_back("truncated " + std::to_string(pos) + " " + f.path);
  }
};

void feed(BundleSplitter& s, const std::string& data, std::size_t chunk) {
  for (std::size_t i = 0; i < data.size(); i += chunk) s.write(as_bytes(std::string_view(data).substr(i, chunk)));
  s.finish();
}

TEST(BundleSplitter, SplitsByOffsetsInAnyChunkingAndChecksEachFile) {
  ManifestFile a = file("a", 0, "hello"), e = file("empty", 5, ""), b = file("b", 5, "world!");
  for (std::size_t chunk : {1u, 2u, 3u, 64u}) {
    Recorder r;
    BundleSplitter s({&b, &e, &a}, r);  // any order: sorted by offset
    feed(s, "helloworld!", chunk);
    EXPECT_EQ(r.content["a"], "hello");
    EXPECT_EQ(r.content["b"], "world!");
    EXPECT_EQ(r.events, (std::vector<std::string>{"begin a", "end a", "begin empty", "end empty", "begin b", "end b"}))
        << "chunk " << chunk;
  }
}

TEST(BundleSplitter, ReportsAChecksumMismatchAtTheFilesEnd) {
  ManifestFile a = file("a", 0, "hello");
  Recorder r;
  BundleSplitter s({&a}, r);
  feed(s, "hellO", 2);
  EXPECT_EQ(r.events.back(), "end a bad");
}

TEST(BundleSplitter, ReportsExtraBytesAndTruncation) {
  ManifestFile a = file("a", 0, "abc"), b = file("b", 3, "def");
  Recorder extra;
  BundleSplitter s1({&a, &b}, extra);
  feed(s1, "abcdefXY", 4);
  EXPECT_EQ(extra.events.back(), "extra 6");
  Recorder cut;
  BundleSplitter s2({&a, &b}, cut);
  feed(s2, "abcd", 4);
  EXPECT_EQ(cut.events.back(), "truncated 4 b");
}

TEST(BundleSplitter, SkipsBytesBetweenFiles) {
  ManifestFile a = file("a", 0, "ab"), b = file("b", 4, "cd");
  Recorder r;
  BundleSplitter s({&a, &b}, r);
  feed(s, "ab--cd", 1);
  EXPECT_EQ(r.content["b"], "cd");
  EXPECT_EQ(r.events.back(), "end b");
}

TEST(BundleSplitter, OverlappingFilesAreCorruption) {
  ManifestFile a = file("a", 0, "abcd"), b = file("b", 2, "cd");
  std::vector<const ManifestFile*> v{&b, &a};
  EXPECT_THROW_KIND(sort_bundle_files(v, "20260101T000000F", 7), ErrorKind::Corruption);
}

}  // namespace
}  // namespace pgvault
