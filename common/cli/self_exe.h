// Where the running tool is installed, to find another pgvault tool beside it.
#pragma once

#include <string>
#include <string_view>

namespace pgvault {

// The executable `name` in the directory of the running one (/proc/self/exe). Throws Internal when
// /proc/self/exe cannot be read, Config naming the path when `name` is not an executable there
// ("<name> is not installed beside <self>").
std::string sibling_executable(std::string_view name, std::string_view self);

}  // namespace pgvault
