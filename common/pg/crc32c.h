// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value 0xFFFFFFFF, final xor 0xFFFFFFFF.
// The same function as PostgreSQL's pg_crc32c (its default backup_manifest checksum) and iSCSI's
// (RFC 3720, appendix B.4). "123456789" -> 0xE3069283.
//
// Two implementations with identical results for every length and alignment, chosen at run time:
// - hardware, on x86-64 processors with SSE4.2: the crc32 instruction, 8 bytes at a time. From 120 bytes
//   on, where the processor also has PCLMULQDQ, the data is cut into blocks of three equal streams (up to
//   192 bytes each) CRC'd side by side, since one instruction's result takes 3 cycles while a new one can
//   start every cycle; the streams' CRCs are then combined (a CRC shifted over n zero bytes is a carry-less
//   multiply by x^(8n) mod P). About three times the single chain's speed on long data.
// - portable, everywhere else: a slicing-by-8 table routine.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/io.h"

namespace pgvault {

enum class Crc32cImpl {
  Auto,      // hardware when available, else portable
  Portable,  // the table routine
  Hardware,  // the SSE4.2 instruction; throws ErrorKind::Internal where unavailable
};

// Whether Crc32cImpl::Hardware can run on this machine.
bool crc32c_hardware_available();

// Extends a finished CRC-32C value with more data: crc32c_extend(0, a) is the CRC of a, and
// crc32c_extend(crc32c_extend(0, a), b) the CRC of a followed by b.
std::uint32_t crc32c_extend(std::uint32_t crc, ByteView data, Crc32cImpl impl = Crc32cImpl::Auto);

inline std::uint32_t crc32c(ByteView data) { return crc32c_extend(0, data); }

// The manifest's text form: 8 lowercase hex digits of the value, most significant first
// (0xE3069283 -> "e3069283").
std::string crc32c_hex(std::uint32_t crc);

// Streaming CRC-32C.
class Crc32c {
 public:
  void update(ByteView data) { crc_ = crc32c_extend(crc_, data); }
  std::uint32_t value() const { return crc_; }  // of everything so far; update() may continue after
  std::string hex() const { return crc32c_hex(crc_); }

 private:
  std::uint32_t crc_ = 0;
};

}  // namespace pgvault
