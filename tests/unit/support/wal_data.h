// The real WAL segments of tests/unit/data/wal/ (captured by make.sh there), decompressed.
#pragma once

#include <gtest/gtest.h>
#include <zstd.h>

#include <fstream>
#include <iterator>
#include <string>

#include "common/base/io.h"

namespace pgvault::testing {

inline constexpr std::uint32_t kCaptureSegmentSize = 1u << 20;

// tests/unit/data/wal/<file> (a .zst of one 1 MiB segment).
inline Bytes load_wal_capture(const std::string& file) {
  std::ifstream in(std::string(PGVAULT_TEST_DATA) + "/wal/" + file, std::ios::binary);
  Bytes packed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(packed.empty()) << file;
  Bytes out(kCaptureSegmentSize);
  std::size_t n = ZSTD_decompress(out.data(), out.size(), packed.data(), packed.size());
  EXPECT_EQ(n, kCaptureSegmentSize) << file;
  return out;
}

}  // namespace pgvault::testing
