// Internal to common/repo: the small JSON objects of a repository (identity, marker, key record).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "common/base/io.h"

namespace pgvault::repo_json {

// Corruption naming `what` when `data` is not valid JSON.
nlohmann::json parse(const Bytes& data, const std::string& what);
// The object as stored: indented, with a final newline.
Bytes to_bytes(const nlohmann::json& j);

}  // namespace pgvault::repo_json
