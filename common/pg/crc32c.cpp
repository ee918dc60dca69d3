#include "common/pg/crc32c.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "common/base/errors.h"
#include "common/base/hex.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PGVAULT_CRC32C_SSE42 1
#include <nmmintrin.h>  // crc32
#include <wmmintrin.h>  // pclmulqdq
#endif

namespace pgvault {

namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;  // Castagnoli, bit-reflected

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC contribution of byte b followed
// by k zero bytes, so eight bytes are folded with eight independent lookups (slicing-by-8).
using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1u) ? kPoly : 0u);
    t[0][b] = c;
  }
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::uint32_t b = 0; b < 256; ++b) {
      std::uint32_t prev = t[k - 1][b];
      t[k][b] = (prev >> 8) ^ t[0][prev & 0xFFu];
    }
  }
  return t;
}

constexpr Tables kTables = make_tables();
static_assert(kTables[0][1] == 0xF26B8303u, "CRC-32C table");
static_assert(kTables[0][128] == kPoly, "CRC-32C table");

inline std::uint32_t load_le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// `state` is the running register (already inverted): no pre/post conditioning here.
std::uint32_t update_portable(std::uint32_t state, const std::uint8_t* p, std::size_t n) {
  while (n >= 8) {
    std::uint32_t lo = state ^ load_le32(p);
    std::uint32_t hi = load_le32(p + 4);
    state = kTables[7][lo & 0xFFu] ^ kTables[6][(lo >> 8) & 0xFFu] ^ kTables[5][(lo >> 16) & 0xFFu] ^
            kTables[4][lo >> 24] ^ kTables[3][hi & 0xFFu] ^ kTables[2][(hi >> 8) & 0xFFu] ^
            kTables[1][(hi >> 16) & 0xFFu] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) state = (state >> 8) ^ kTables[0][(state ^ *p++) & 0xFFu];
  return state;
}

#ifdef PGVAULT_CRC32C_SSE42
inline std::uint64_t load64(const std::uint8_t* p) {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// One dependency chain of crc32 instructions: each waits for the previous one's result.
__attribute__((target("sse4.2"))) std::uint32_t update_sse42(std::uint32_t state, const std::uint8_t* p,
                                                            std::size_t n) {
  std::uint64_t s = state;
  for (; n >= 8; p += 8, n -= 8) s = _mm_crc32_u64(s, load64(p));
  state = static_cast<std::uint32_t>(s);
  while (n-- > 0) state = _mm_crc32_u8(state, *p++);
  return state;
}

// Combining streams. The register is linear over GF(2): the CRC of A followed by B, from state s, is
// shift(crc(s, A), |B|) xor crc(0, B), where shift(c, n) = c * x^(8n) mod P is what n zero bytes do to
// the register. In the bit-reflected form bit 31 holds the coefficient of x^0 and bit 0 that of x^31.

// a * b mod P.
constexpr std::uint32_t gf_multiply(std::uint32_t a, std::uint32_t b) {
  std::uint32_t product = 0;
  for (int i = 31; i >= 0; --i) {  // the terms of a from x^0 up, b times x^(31 - i) alongside
    if ((a >> i) & 1u) product ^= b;
    b = (b >> 1) ^ ((b & 1u) ? kPoly : 0u);
  }
  return product;
}

// x^e mod P.
constexpr std::uint32_t x_power(std::uint64_t e) {
  std::uint32_t result = 0x80000000u;  // x^0
  for (std::uint32_t square = 0x40000000u; e != 0; e >>= 1, square = gf_multiply(square, square)) {
    if (e & 1u) result = gf_multiply(result, square);
  }
  return result;
}
static_assert(x_power(31) == 1u && x_power(32) == kPoly, "x^32 mod P is P's low terms");

// The carry-less product of two reflected 32-bit values, read as 64 reflected bits, is their product
// times x; the crc32 instruction over those 64 bits from a zero register multiplies by x^32 and reduces.
// So with k = x^(8n - 33) mod P, crc32(0, clmul(c, k)) = shift(c, n).
constexpr std::uint32_t shift_multiplier(std::size_t n) { return x_power(8 * std::uint64_t{n} - 33); }

__attribute__((target("sse4.2,pclmul"))) inline std::uint64_t clmul(std::uint64_t c, std::uint32_t k) {
  const __m128i product = _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(c)),
                                               _mm_cvtsi32_si128(static_cast<int>(k)), 0);
  return static_cast<std::uint64_t>(_mm_cvtsi128_si64(product));
}

// A block is three streams of equal length, each CRC'd from zero with its own chain so that the
// instruction's latency (3 cycles, one issued per cycle) overlaps; the incoming state and the streams' CRCs
// are then shifted over what follows them in the block. The next block's chains do not wait for that
// combine. Streams are as long as the data allows up to kMaxStreamWords: short enough that the three
// loads stay close together, which keeps data from memory streaming in as one sequence (longer streams,
// 2 KiB and up, ran at half the speed on a 16 MiB buffer). Below kMinStreamWords the single chain is as
// fast. Both chosen by measurement.
constexpr std::size_t kMaxStreamWords = 24, kMinStreamWords = 5;  // 8-byte words per stream

struct StreamShifts {
  std::uint32_t one, two, three;  // multipliers for shifting over one, two and three streams
};
using ShiftTable = std::array<StreamShifts, kMaxStreamWords + 1>;  // by stream length in words

constexpr ShiftTable make_shift_table() {
  ShiftTable t{};
  for (std::size_t w = 1; w <= kMaxStreamWords; ++w) {
    t[w] = {shift_multiplier(8 * w), shift_multiplier(16 * w), shift_multiplier(24 * w)};
  }
  return t;
}

constexpr ShiftTable kShiftTable = make_shift_table();

__attribute__((target("sse4.2,pclmul"))) std::uint32_t update_3way(std::uint32_t state, const std::uint8_t* p,
                                                                  std::size_t words) {
  const std::size_t len = 8 * words;
  std::uint64_t a = 0, b = 0, c = 0;
  for (std::size_t i = 0; i < len; i += 8) {
    a = _mm_crc32_u64(a, load64(p + i));
    b = _mm_crc32_u64(b, load64(p + len + i));
    c = _mm_crc32_u64(c, load64(p + 2 * len + i));
  }
  const StreamShifts& k = kShiftTable[words];
  const std::uint64_t shifted = clmul(state, k.three) ^ clmul(a, k.two) ^ clmul(b, k.one);
  return static_cast<std::uint32_t>(c ^ _mm_crc32_u64(0, shifted));
}

__attribute__((target("sse4.2,pclmul"))) std::uint32_t update_interleaved(std::uint32_t state,
                                                                         const std::uint8_t* p, std::size_t n) {
  std::size_t words;
  while ((words = std::min(n / 24, kMaxStreamWords)) >= kMinStreamWords) {
    state = update_3way(state, p, words);
    p += 24 * words;
    n -= 24 * words;
  }
  return update_sse42(state, p, n);  // fewer than 24 * kMinStreamWords bytes
}

bool detect_sse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}

bool clmul_available() {
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul");
  }();
  return available;
}

// The interleaved streams where the data is long enough and the carry-less multiply available, else the
// single chain. Loads are unaligned: no byte steps to an 8-byte boundary first, since a load that straddles
// two cache lines costs less than the up to 7 dependent byte steps (3 cycles each) that would avoid it.
__attribute__((target("sse4.2"))) std::uint32_t update_hardware(std::uint32_t state, const std::uint8_t* p,
                                                               std::size_t n) {
  if (n >= 24 * kMinStreamWords && clmul_available()) return update_interleaved(state, p, n);
  return update_sse42(state, p, n);
}
#endif

bool hardware_available() {
#ifdef PGVAULT_CRC32C_SSE42
  static const bool available = detect_sse42();
  return available;
#else
  return false;
#endif
}

}  // namespace

bool crc32c_hardware_available() { return hardware_available(); }

std::uint32_t crc32c_extend(std::uint32_t crc, ByteView data, Crc32cImpl impl) {
  std::uint32_t state = ~crc;
  if (impl == Crc32cImpl::Auto) impl = hardware_available() ? Crc32cImpl::Hardware : Crc32cImpl::Portable;
  if (impl == Crc32cImpl::Hardware) {
#ifdef PGVAULT_CRC32C_SSE42
    if (hardware_available()) return ~update_hardware(state, data.data(), data.size());
#endif
    throw Error(ErrorKind::Internal, "CRC-32C: the SSE4.2 crc32 instruction is not available on this machine");
  }
  return ~update_portable(state, data.data(), data.size());
}

std::string crc32c_hex(std::uint32_t crc) {
  const std::uint8_t be[4] = {static_cast<std::uint8_t>(crc >> 24), static_cast<std::uint8_t>(crc >> 16),
                              static_cast<std::uint8_t>(crc >> 8), static_cast<std::uint8_t>(crc)};
  return to_hex(be);
}

}  // namespace pgvault
