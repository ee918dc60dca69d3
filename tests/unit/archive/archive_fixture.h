// Shared by the archive unit tests: synthetic WAL segments and a local repository.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "common/archive/archive.h"
#include "common/base/errors.h"
#include "common/storage/storage_fs.h"
#include "support/test_support.h"

namespace pgvault::archive_test {

using pgvault::testing::TempDir;

constexpr std::uint32_t kSeg = 1u << 20;

// A synthetic segment whose first page header says `sysid`, timeline `tli` and the position of segment
// number `segno`.
inline Bytes make_segment(std::uint64_t sysid, std::uint32_t tli, std::uint8_t fill, std::uint32_t size = kSeg,
                   std::uint64_t segno = 1) {
  Bytes seg(size);
  for (std::size_t i = 0; i < seg.size(); ++i) seg[i] = static_cast<std::uint8_t>(fill + i % 251);
  std::uint16_t magic = 0xD110, info = 2;
  std::uint32_t blcksz = 8192;
  std::memcpy(seg.data(), &magic, 2);
  std::memcpy(seg.data() + 2, &info, 2);
  std::memcpy(seg.data() + 4, &tli, 4);
  std::uint64_t pageaddr = segno * size;
  std::memcpy(seg.data() + 8, &pageaddr, 8);
  std::memcpy(seg.data() + 24, &sysid, 8);
  std::memcpy(seg.data() + 32, &size, 4);
  std::memcpy(seg.data() + 36, &blcksz, 4);
  return seg;
}

inline void write_file(const std::string& path, ByteView data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

inline Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

inline ErrorKind kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no error";
  return ErrorKind::Internal;
}

struct Fixture : ::testing::Test {
  TempDir dir;
  std::string repo_path = dir / "repo";
  std::string wal_dir = dir / "pg_wal";
  Config config;

  void SetUp() override {
    std::filesystem::create_directories(wal_dir);
    config.repository.path = repo_path;
  }
  Repository repo() { return Repository(make_fs_storage(repo_path), config); }
  std::string put_file(const std::string& name, ByteView data) {
    std::string p = wal_dir + "/" + name;
    write_file(p, data);
    return p;
  }
};

inline const char* const kName = "000000010000000000000001";


}  // namespace pgvault::archive_test
