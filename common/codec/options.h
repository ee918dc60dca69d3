// The object format's compression and encryption methods (their values are stored in every object
// header, docs/FORMAT.md), on their own so that the configuration can name them without the codec.
#pragma once

#include <cstdint>

namespace pgvault {

enum class Compression : std::uint8_t { None = 0, Zstd = 1 };
enum class Encryption : std::uint8_t { None = 0, Aes256Gcm = 1 };

}  // namespace pgvault
