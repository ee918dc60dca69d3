#include "common/cli/self_exe.h"

#include <unistd.h>

#include <climits>
#include <filesystem>

#include "common/base/errors.h"

namespace pgvault {

std::string sibling_executable(std::string_view name, std::string_view self) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error(ErrorKind::Internal, "cannot read /proc/self/exe");
  std::string path = std::filesystem::path(std::string(buf, static_cast<std::size_t>(n))).parent_path() / name;
  if (::access(path.c_str(), X_OK) != 0) {
    throw Error(ErrorKind::Config,
                std::string(name) + " is not installed beside " + std::string(self) + " (" + path + ")");
  }
  return path;
}

}  // namespace pgvault
