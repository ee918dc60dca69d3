// The page cache as tests see it: how much of a file it holds, and whether a directory's filesystem
// takes O_DIRECT.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <vector>

#include "common/base/fs.h"

namespace pgvault::testing {

// Pages of the file in the page cache (mincore over a mapping of it).
inline std::size_t resident_pages(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_size == 0) return 0;
  void* map = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return 0;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((static_cast<std::size_t>(st.st_size) + page - 1) / page);
  std::size_t n = 0;
  if (::mincore(map, static_cast<std::size_t>(st.st_size), in.data()) == 0) {
    for (unsigned char v : in) n += v & 1;
  }
  ::munmap(map, static_cast<std::size_t>(st.st_size));
  return n;
}

// Whether files in `dir` can be opened with O_DIRECT (ext4, xfs, btrfs: yes; tmpfs: no).
inline bool takes_direct_io(const std::string& dir) {
  const std::string probe = dir + "/probe";
  Fd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_DIRECT, 0600));
  ::unlink(probe.c_str());
  return static_cast<bool>(fd);
}

}  // namespace pgvault::testing
