// Reading a JSON text whose bulk is one top-level array of objects (a manifest's file entries) without
// holding a tree of every element: each element is handed over as the parse ends it and dropped from the
// tree. For the libraries that link nlohmann_json (repo: manifest.cpp; backup: server_manifest.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include <exception>
#include <functional>
#include <string>

namespace pgvault {

struct TakenEntries {
  nlohmann::json rest;             // the parsed text without the elements taken
  std::exception_ptr entry_error;  // the first error take_entry threw (no element was taken after it)
};

// Parses `text`, calling take_entry(element) for each object element of the top-level array `key`, in
// order, and keeping none of them in `rest`. An error of take_entry waits in entry_error, for the caller
// to rethrow after its own checks of `rest` (a format version, a checksum), which come first.
// Throws nlohmann::json::exception when `text` is not JSON, and Corruption "<malformed> (\"<key>\" twice)"
// when `key` appears twice at the top level (the second array would silently replace the first).
TakenEntries parse_taking_entries(const std::string& text, const std::string& key,
                                  const std::function<void(const nlohmann::json&)>& take_entry,
                                  const std::string& malformed);

// After entry_error: Corruption "<malformed> (...)" unless `rest` is an object whose `key` is an array
// left empty, i.e. every element was an object taken out ("a file entry is not an object" otherwise).
void refuse_untaken_entries(const nlohmann::json& rest, const std::string& key, const std::string& malformed);

}  // namespace pgvault
