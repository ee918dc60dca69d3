#include "common/pg/crc32c.h"

#include <array>
#include <cstring>

#include "common/base/errors.h"
#include "common/base/hex.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PGVAULT_CRC32C_SSE42 1
#include <nmmintrin.h>
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
__attribute__((target("sse4.2"))) std::uint32_t update_sse42(std::uint32_t state, const std::uint8_t* p,
                                                            std::size_t n) {
  // Byte steps up to an 8-byte boundary, then 8 bytes per instruction (the load is unaligned-safe
  // anyway; aligning only keeps a load from straddling two cache lines).
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
    state = _mm_crc32_u8(state, *p++);
    --n;
  }
  std::uint64_t s = state;
  while (n >= 32) {
    std::uint64_t w[4];
    std::memcpy(w, p, sizeof w);
    s = _mm_crc32_u64(s, w[0]);
    s = _mm_crc32_u64(s, w[1]);
    s = _mm_crc32_u64(s, w[2]);
    s = _mm_crc32_u64(s, w[3]);
    p += 32;
    n -= 32;
  }
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    s = _mm_crc32_u64(s, w);
    p += 8;
    n -= 8;
  }
  state = static_cast<std::uint32_t>(s);
  while (n-- > 0) state = _mm_crc32_u8(state, *p++);
  return state;
}

bool detect_sse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
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
    if (hardware_available()) return ~update_sse42(state, data.data(), data.size());
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
