// DirectFileWriter: a file written past the page cache where the filesystem takes O_DIRECT, through it
// where it does not, every byte in place either way.
#include "common/base/direct_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>

#include "common/base/fs.h"
#include "support/page_cache.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// 9 MiB and 1234 bytes, every 4 KiB block different, written in pieces of every size from 1 byte to
// past the writer's buffer.
std::string content() {
  std::string s((9u << 20) + 1234, '\0');
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>((i / 4096 * 31 + i) & 0xff);
  return s;
}

// Writes `data` into a new file at `path` in irregular pieces; returns whether it went direct.
bool write_file(DirectFileWriter& w, const std::string& path, const std::string& data, bool direct) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  EXPECT_TRUE(fd);
  w.start(fd.get(), path, direct);
  const bool went_direct = w.direct();
  std::size_t at = 0, piece = 1;
  while (at < data.size()) {
    const std::size_t n = std::min(piece, data.size() - at);
    w.write(as_bytes(std::string_view(data).substr(at, n)));
    at += n;
    piece = piece * 3 + 7;
    if (piece > (6u << 20)) piece = 1;
  }
  w.finish();
  EXPECT_EQ(::fcntl(fd.get(), F_GETFL) & O_DIRECT, 0) << "O_DIRECT is off after finish()";
  fd.close(path);
  return went_direct;
}

// On a filesystem that takes O_DIRECT (the test's temporary directory on ext4, xfs, btrfs) the file goes
// past the page cache: only the tail under one block is cached; written through the cache (direct =
// false) every page is. Every byte is in place both ways, and one writer serves several files.
TEST(DirectFileWriter, AFileGoesPastThePageCacheWhereTheFilesystemTakesIt) {
  testing::TempDir tmp;
  if (!testing::takes_direct_io(tmp.path())) GTEST_SKIP() << tmp.path() << " does not take O_DIRECT";
  const std::string data = content();
  DirectFileWriter w;
  EXPECT_TRUE(write_file(w, tmp / "direct", data, true));
  EXPECT_TRUE(slurp(tmp / "direct") == data);  // not EXPECT_EQ: 9 MiB in a failure message
  EXPECT_FALSE(write_file(w, tmp / "cached", data, false));
  EXPECT_TRUE(slurp(tmp / "cached") == data);
  EXPECT_TRUE(write_file(w, tmp / "direct2", data.substr(0, 5000), true));
  EXPECT_EQ(slurp(tmp / "direct2"), data.substr(0, 5000));
  // Read back above, so measure on a fresh copy of each.
  EXPECT_TRUE(write_file(w, tmp / "direct3", data, true));
  EXPECT_TRUE(write_file(w, tmp / "direct4", std::string(), true));
  EXPECT_EQ(slurp(tmp / "direct4"), "");
  EXPECT_FALSE(write_file(w, tmp / "cached2", data, false));
  EXPECT_LE(testing::resident_pages(tmp / "direct3"), 1u);
  EXPECT_EQ(testing::resident_pages(tmp / "cached2"), (data.size() + 4095) / 4096);
}

// Replaces the direct write(2) for the lifetime of the object.
struct DirectWrites {
  explicit DirectWrites(ssize_t (*call)(int, const void*, std::size_t)) { DirectFileWriter::direct_write_call = call; }
  ~DirectWrites() { DirectFileWriter::direct_write_call = ::write; }
  static inline int calls = 0;
};

// A direct write refused with EINVAL (a device wanting another alignment) is not an error: that write
// and the rest of the file go through the page cache, every byte in place; so does a direct write cut
// short off a block boundary.
TEST(DirectFileWriter, ARefusedOrShortDirectWriteGoesOnThroughThePageCache) {
  testing::TempDir tmp;
  if (!testing::takes_direct_io(tmp.path())) GTEST_SKIP() << tmp.path() << " does not take O_DIRECT";
  const std::string data = content();
  DirectFileWriter w;
  {
    DirectWrites refuse([](int, const void*, std::size_t) -> ssize_t {
      ++DirectWrites::calls;
      errno = EINVAL;
      return -1;
    });
    DirectWrites::calls = 0;
    EXPECT_TRUE(write_file(w, tmp / "refused", data, true));
    EXPECT_EQ(DirectWrites::calls, 1);  // once refused, never tried again for this file
    EXPECT_FALSE(w.direct());
  }
  EXPECT_TRUE(slurp(tmp / "refused") == data);
  {
    DirectWrites cut([](int fd, const void* buf, std::size_t n) -> ssize_t {
      ++DirectWrites::calls;
      return ::write(fd, buf, std::min<std::size_t>(n, 4096 + 512));  // 512: still aligned for the device
    });
    DirectWrites::calls = 0;
    EXPECT_TRUE(write_file(w, tmp / "short", data, true));
    EXPECT_EQ(DirectWrites::calls, 1);
  }
  EXPECT_TRUE(slurp(tmp / "short") == data);
}

// Any other failure of a direct write is the write's error, naming the file.
TEST(DirectFileWriter, AFailedDirectWriteIsAnIoErrorNamingTheFile) {
  testing::TempDir tmp;
  if (!testing::takes_direct_io(tmp.path())) GTEST_SKIP() << tmp.path() << " does not take O_DIRECT";
  DirectWrites fail([](int, const void*, std::size_t) -> ssize_t {
    errno = EIO;
    return -1;
  });
  const std::string path = tmp / "f";
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  DirectFileWriter w;
  w.start(fd.get(), path, true);
  ASSERT_TRUE(w.direct());
  const std::string data = content();
  try {
    w.write(as_bytes(data));
    w.finish();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pgvault
