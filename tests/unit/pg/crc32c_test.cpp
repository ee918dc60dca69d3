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
  std::mt19937_64 rng(20261121);
  std::vector<std::uint8_t> buf(4096 + 64);
  for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
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
  std::mt19937_64 rng(42);
  std::vector<std::uint8_t> buf(200000);
  for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
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

TEST(Crc32c, HardwareWhereUnavailableIsAnInternalError) {
  if (crc32c_hardware_available()) GTEST_SKIP() << "this machine has SSE4.2";
  EXPECT_THROW(crc32c_extend(0, view("x"), Crc32cImpl::Hardware), Error);
}

}  // namespace
}  // namespace pgvault
