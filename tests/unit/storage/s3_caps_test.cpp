// The S3 backend's remembered conditional-write capability (s3caps) and the Content-Range parser that
// get_tail() relies on to take size and bytes from one answer.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/storage/s3/s3.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using s3caps::Cond;
using testing::TempDir;

const std::string kEp = "http://127.0.0.1:8080";
const std::string kBucket = "repo";
constexpr std::int64_t kNow = 1'800'000'000;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(S3Caps, RemembersPerEndpointAndBucket) {
  TempDir dir;
  const std::string file = dir / "caps";
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow), Cond::Unknown);  // no file yet
  s3caps::remember(file, kEp, kBucket, Cond::Unsupported, kNow);
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow + 10), Cond::Unsupported);
  // Another endpoint (the store moved, or another store behind another port) or bucket: probe again.
  EXPECT_EQ(s3caps::recall(file, "http://127.0.0.1:8081", kBucket, kNow + 10), Cond::Unknown);
  EXPECT_EQ(s3caps::recall(file, "https://127.0.0.1:8080", kBucket, kNow + 10), Cond::Unknown);
  EXPECT_EQ(s3caps::recall(file, kEp, "other", kNow + 10), Cond::Unknown);
  // A newer answer replaces the old one for that store only.
  s3caps::remember(file, "http://minio:9000", kBucket, Cond::Supported, kNow + 20);
  s3caps::remember(file, kEp, kBucket, Cond::Supported, kNow + 30);
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow + 40), Cond::Supported);
  EXPECT_EQ(s3caps::recall(file, "http://minio:9000", kBucket, kNow + 40), Cond::Supported);
  std::string text = read_text(file);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
}

TEST(S3Caps, ExpiresSoTheStoreIsProbedAgain) {
  TempDir dir;
  const std::string file = dir / "caps";
  s3caps::remember(file, kEp, kBucket, Cond::Unsupported, kNow);
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow + s3caps::kMaxAgeS - 1), Cond::Unsupported);
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow + s3caps::kMaxAgeS), Cond::Unknown);
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow - 5), Cond::Unknown);  // written "in the future"
}

TEST(S3Caps, IgnoresGarbageAndKeepsTheNewestEntries) {
  TempDir dir;
  const std::string file = dir / "caps";
  {
    std::ofstream out(file);
    out << "junk\n" << kNow << " maybe " << kEp << " " << kBucket << "\n"
        << kNow << " no " << kEp << " " << kBucket << " extra\n";
  }
  ::chmod(file.c_str(), 0600);
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow), Cond::Unknown);
  for (std::size_t i = 0; i < s3caps::kMaxEntries + 10; ++i) {
    s3caps::remember(file, kEp, "b" + std::to_string(i), Cond::Unsupported, kNow + static_cast<std::int64_t>(i));
  }
  const std::int64_t later = kNow + static_cast<std::int64_t>(s3caps::kMaxEntries) + 20;
  EXPECT_EQ(s3caps::recall(file, kEp, "b0", later), Cond::Unknown);  // dropped: oldest
  EXPECT_EQ(s3caps::recall(file, kEp, "b" + std::to_string(s3caps::kMaxEntries + 9), later), Cond::Unsupported);
  std::string text = read_text(file);
  EXPECT_EQ(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')), s3caps::kMaxEntries);
  // Names with blanks would break the line format: not remembered, never an error.
  s3caps::remember(file, kEp, "a b", Cond::Unsupported, later);
  EXPECT_EQ(s3caps::recall(file, kEp, "a b", later), Cond::Unknown);
}

TEST(S3Caps, DistrustsFilesOthersCouldHavePlanted) {
  TempDir dir;
  const std::string file = dir / "caps";
  s3caps::remember(file, kEp, kBucket, Cond::Unsupported, kNow);
  ASSERT_EQ(s3caps::recall(file, kEp, kBucket, kNow), Cond::Unsupported);
  // A file others may write: a planted "no" would switch the condition off, so it reads as unknown.
  ::chmod(file.c_str(), 0622);
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow), Cond::Unknown);
  ::chmod(file.c_str(), 0600);
  ::chmod(dir.path().c_str(), 0777);  // a directory others may write (the file could be swapped)
  EXPECT_EQ(s3caps::recall(file, kEp, kBucket, kNow), Cond::Unknown);
  ::chmod(dir.path().c_str(), 0700);
  // A symlink to a good file is not followed.
  const std::string link = dir / "link";
  ASSERT_EQ(::symlink(file.c_str(), link.c_str()), 0);
  EXPECT_EQ(s3caps::recall(link, kEp, kBucket, kNow), Cond::Unknown);
  // Nowhere to write: silently nothing.
  s3caps::remember(dir / "missing/caps", kEp, kBucket, Cond::Unsupported, kNow);
  EXPECT_EQ(s3caps::recall(dir / "missing/caps", kEp, kBucket, kNow), Cond::Unknown);
  EXPECT_EQ(s3caps::recall("", kEp, kBucket, kNow), Cond::Unknown);
}

TEST(S3Caps, DefaultFileIsInAPrivateDirectory) {
  TempDir dir;
  ::setenv("XDG_RUNTIME_DIR", dir.path().c_str(), 1);
  std::string file = s3caps::default_file();
  EXPECT_EQ(file, dir.path() + "/pgvault/s3-capabilities");
  struct stat st;
  ASSERT_EQ(::stat((dir.path() + "/pgvault").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A runtime dir others may write is not used: the per-user directory under TMPDIR is.
  ::chmod(dir.path().c_str(), 01777);
  ::setenv("TMPDIR", dir.path().c_str(), 1);
  const std::string mine = dir.path() + "/pgvault-" + std::to_string(::geteuid());
  EXPECT_EQ(s3caps::default_file(), mine + "/s3-capabilities");
  // That directory opened to others (or replaced by someone else's): no file at all.
  ::chmod(mine.c_str(), 0777);
  EXPECT_EQ(s3caps::default_file(), "");
  ::chmod(dir.path().c_str(), 0700);
  ::unsetenv("XDG_RUNTIME_DIR");
  ::unsetenv("TMPDIR");
}

TEST(ContentRange, ParsesRangesAndUnsatisfied) {
  auto cr = parse_content_range("bytes 976-1023/1024");
  ASSERT_TRUE(cr);
  EXPECT_EQ(cr->first, 976u);
  EXPECT_EQ(cr->last, 1023u);
  EXPECT_EQ(cr->total, 1024u);
  EXPECT_FALSE(cr->unsatisfied);
  cr = parse_content_range("bytes */0");
  ASSERT_TRUE(cr);
  EXPECT_TRUE(cr->unsatisfied);
  EXPECT_EQ(cr->total, 0u);
  cr = parse_content_range("bytes 0-47/48");
  ASSERT_TRUE(cr);
  EXPECT_EQ(cr->total - cr->first, 48u);
}

TEST(ContentRange, RejectsMalformedAndInconsistent) {
  for (const char* bad : {"", "bytes", "bytes ", "bytes 1-2", "bytes 1-2/", "bytes -2/3", "bytes 1-/3",
                          "bytes 5-4/10", "bytes 0-10/10", "bytes 0-1/2 ", "bytes 0-1/2x", "items 0-1/2",
                          "bytes */", "bytes */x", "bytes 0-1/*", "bytes +1-2/3", "bytes 99999999999999999999-1/2"}) {
    EXPECT_FALSE(parse_content_range(bad)) << bad;
  }
}

}  // namespace
}  // namespace pgvault
