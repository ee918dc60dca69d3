#include "common/pg/crc32c.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "common/base/errors.h"

namespace pgvault {
namespace {

ByteView view(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

// Every implementation this machine can run.
std::vector<Crc32cImpl> impls() {
  std::vector<Crc32cImpl> v = {Crc32cImpl::Auto, Crc32cImpl::Portable};
  if (crc32c_hardware_available()) v.push_back(Crc32cImpl::Hardware);
  return v;
}

std::uint32_t crc(ByteView d, Crc32cImpl impl) { return crc32c_extend(0, d, impl); }

// Bit at a time, straight from the definition: the reference the fast routines are compared with.
std::uint32_t crc_bitwise(ByteView d) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::uint8_t b : d) {
    c ^= b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1u) ? 0x82F63B78u : 0u);
  }
  return c ^ 0xFFFFFFFFu;
}

// Hardware and portable routines agree on d.
::testing::AssertionResult same_crc(ByteView d) {
  const std::uint32_t hw = crc(d, Crc32cImpl::Hardware), sw = crc(d, Crc32cImpl::Portable);
  if (hw == sw) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "hardware " << crc32c_hex(hw) << ", portable " << crc32c_hex(sw)
                                       << ", length " << d.size();
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

TEST(Crc32c, CheckValue) {
  for (auto impl : impls()) EXPECT_EQ(crc(view("123456789"), impl), 0xE3069283u) << static_cast<int>(impl);
  EXPECT_EQ(crc32c(view("123456789")), 0xE3069283u);
}

TEST(Crc32c, EmptyInputIsZero) {
  for (auto impl : impls()) {
    EXPECT_EQ(crc(ByteView{}, impl), 0u);
    EXPECT_EQ(crc32c_extend(0xE3069283u, ByteView{}, impl), 0xE3069283u);  // extending by nothing
  }
  Crc32c c;
  EXPECT_EQ(c.value(), 0u);
  EXPECT_EQ(c.hex(), "00000000");
}

// RFC 3720 (iSCSI), appendix B.4.
TEST(Crc32c, Rfc3720Vectors) {
  std::vector<std::uint8_t> zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
    down[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(31 - i);
  }
  for (auto impl : impls()) {
    SCOPED_TRACE(static_cast<int>(impl));
    EXPECT_EQ(crc(zeros, impl), 0x8A9136AAu);
    EXPECT_EQ(crc(ones, impl), 0x62A8AB43u);
    EXPECT_EQ(crc(up, impl), 0x46DD794Eu);
    EXPECT_EQ(crc(down, impl), 0x113FDB5Cu);
  }
}

TEST(Crc32c, HexIsTheValueMostSignificantFirst) {
  EXPECT_EQ(crc32c_hex(0xE3069283u), "e3069283");
  EXPECT_EQ(crc32c_hex(0x0000000Au), "0000000a");
  EXPECT_EQ(crc32c_hex(0xFFFFFFFFu), "ffffffff");
}

TEST(Crc32c, HardwareAndPortableAgreeOnRandomData) {
  const std::vector<std::uint8_t> buf = random_bytes(4096 + 64, 20261121);
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (std::size_t n : {511u, 512u, 513u, 1023u, 1024u, 1025u, 4095u, 4096u}) lengths.push_back(n);
  const bool hw = crc32c_hardware_available();
  if (!hw) std::printf("SSE4.2 crc32 not available: checking the portable routine only\n");
  for (std::size_t misalign = 0; misalign < 16; ++misalign) {
    for (std::size_t n : lengths) {
      if (misalign + n > buf.size()) continue;
      ByteView d(buf.data() + misalign, n);
      std::uint32_t want = crc_bitwise(d);
      ASSERT_EQ(crc(d, Crc32cImpl::Portable), want) << "portable, length " << n << ", offset " << misalign;
      if (hw) {
        ASSERT_EQ(crc(d, Crc32cImpl::Hardware), want) << "hardware, length " << n << ", offset " << misalign;
      }
      ASSERT_EQ(crc(d, Crc32cImpl::Auto), want) << "auto, length " << n << ", offset " << misalign;
    }
  }
}

TEST(Crc32c, PiecesEqualOneShot) {
  const std::vector<std::uint8_t> buf = random_bytes(200000, 42);
  std::mt19937_64 rng(43);
  const std::uint32_t whole = crc_bitwise(buf);
  for (auto impl : impls()) {
    for (int round = 0; round < 20; ++round) {
      std::uint32_t c = 0;
      Crc32c streaming;
      std::size_t pos = 0;
      while (pos < buf.size()) {
        std::size_t n = std::min<std::size_t>(buf.size() - pos, rng() % (round < 10 ? 17 : 70000));
        ByteView piece(buf.data() + pos, n);
        c = crc32c_extend(c, piece, impl);
        streaming.update(piece);
        pos += n;
      }
      ASSERT_EQ(c, whole) << static_cast<int>(impl) << " round " << round;
      ASSERT_EQ(streaming.value(), whole);
    }
  }
}

// The hardware routine splits long data into blocks of three streams CRC'd side by side and combines them;
// blocks are 120 bytes (three streams of 5 words) up to 576 (three of 24). Every length up to tens of full
// blocks, at an aligned and an unaligned start, crosses each of those boundaries and every stream length.
TEST(Crc32c, HardwareEqualsPortableAtEveryLengthUpToManyBlocks) {
  if (!crc32c_hardware_available()) GTEST_SKIP() << "SSE4.2 crc32 not available";
  const std::vector<std::uint8_t> buf = random_bytes(8192 + 256 + 8, 7);
  for (std::size_t offset : {0u, 5u}) {
    for (std::size_t n = 0; offset + n <= buf.size(); ++n) {
      ASSERT_TRUE(same_crc(ByteView(buf.data() + offset, n))) << "offset " << offset;
    }
  }
}

// Both sides of each threshold from every start offset within an 8-byte word.
TEST(Crc32c, HardwareEqualsPortableAroundBlockBoundariesAtEveryOffset) {
  if (!crc32c_hardware_available()) GTEST_SKIP() << "SSE4.2 crc32 not available";
  const std::vector<std::uint8_t> buf = random_bytes(4 * 6144 + 64, 8);
  for (std::size_t boundary : {96u, 120u, 144u, 552u, 576u, 600u, 696u, 1152u, 1728u, 6144u, 12288u, 24576u}) {
    for (std::size_t n = boundary - 24; n <= boundary + 24; ++n) {
      for (std::size_t offset = 0; offset < 16; ++offset) {
        ASSERT_TRUE(same_crc(ByteView(buf.data() + offset, n))) << "offset " << offset;
      }
    }
  }
}

// Megabytes at every offset within a word, against the bit-at-a-time definition once as well.
TEST(Crc32c, HardwareEqualsPortableOnLargeBuffers) {
  if (!crc32c_hardware_available()) GTEST_SKIP() << "SSE4.2 crc32 not available";
  const std::vector<std::uint8_t> buf = random_bytes((4u << 20) + 64, 9);
  const ByteView mib(buf.data(), 1u << 20);
  ASSERT_EQ(crc(mib, Crc32cImpl::Hardware), crc_bitwise(mib));
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t n : {(1u << 20) - 1, (3u << 20) + 6151, 4u << 20}) {
      ASSERT_TRUE(same_crc(ByteView(buf.data() + offset, n))) << "offset " << offset;
    }
  }
  const std::vector<std::uint8_t> ones(3u << 20, 0xFF);
  EXPECT_TRUE(same_crc(ones));
}

// extend() over two or three pieces cut at random points equals the CRC of the whole.
TEST(Crc32c, HardwareExtendSplitAtRandomPointsEqualsWhole) {
  if (!crc32c_hardware_available()) GTEST_SKIP() << "SSE4.2 crc32 not available";
  const std::vector<std::uint8_t> buf = random_bytes(1u << 20, 10);
  const std::uint32_t whole = crc(buf, Crc32cImpl::Portable);
  std::mt19937_64 rng(11);
  for (int round = 0; round < 300; ++round) {
    const std::size_t limit = round % 2 ? buf.size() : 20000;  // half of the cuts near the start
    std::size_t cut1 = rng() % limit, cut2 = rng() % limit;
    if (cut1 > cut2) std::swap(cut1, cut2);
    const ByteView all(buf);
    std::uint32_t c = crc32c_extend(0, all.subspan(0, cut1), Crc32cImpl::Hardware);
    if (round % 3 == 0) {
      c = crc32c_extend(c, all.subspan(cut1), Crc32cImpl::Hardware);
    } else {
      c = crc32c_extend(c, all.subspan(cut1, cut2 - cut1), Crc32cImpl::Hardware);
      c = crc32c_extend(c, all.subspan(cut2), Crc32cImpl::Hardware);
    }
    ASSERT_EQ(c, whole) << "cuts at " << cut1 << " and " << cut2 << ", round " << round;
  }
}

TEST(Crc32c, HardwareWhereUnavailableIsAnInternalError) {
  if (crc32c_hardware_available()) GTEST_SKIP() << "this machine has SSE4.2";
  EXPECT_THROW(crc32c_extend(0, view("x"), Crc32cImpl::Hardware), Error);
}

}  // namespace
}  // namespace pgvault
