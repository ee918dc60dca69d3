// Hexadecimal text, the one copy every library uses (digests in manifests and messages, key files,
// CRC-32C values, tokens).
#pragma once

#include <string>
#include <string_view>

#include "common/base/io.h"

namespace pgvault {

// Two lowercase digits per byte, most significant nibble first: {0x0a, 0xff} -> "0aff".
std::string to_hex(ByteView data);

// The value (0..15) of one hex digit in either case, or -1 when `c` is not one.
int hex_digit_value(char c);

// Parses hex digits of either case, two per byte. Throws ErrorKind::InvalidInput on an odd length or a
// character that is not a hex digit; the message gives the offset, never the text (it may be key
// material), and the partly decoded bytes are wiped first.
Bytes from_hex(std::string_view hex);

}  // namespace pgvault
