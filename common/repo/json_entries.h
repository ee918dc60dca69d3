// Reading a JSON text whose bulk is one top-level array of objects (a manifest's file entries) without
// holding a tree of every element: nlohmann's SAX parser feeds a handler that builds the tree of the rest
// of the text and hands each element's members to an EntryReader as the parse reads them, so no element
// is ever a tree of its own (only a member whose value is an object or an array). For the libraries that
// link nlohmann_json (repo: manifest.cpp; backup: server_manifest.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include <exception>
#include <functional>
#include <string>

namespace pgvault {

// Takes the elements of the array, member by member in the text's order. A key may come twice in one
// element (JSON text allows it): the reader decides what that means.
class EntryReader {
 public:
  virtual ~EntryReader() = default;
  // One member of the current element: a scalar, or the tree of a nested object or array.
  virtual void member(const std::string& key, nlohmann::json&& value) = 0;
  // The current element ended; the next member() is the next element's.
  virtual void end() = 0;
};

struct TakenEntries {
  nlohmann::json rest;             // the parsed text without the elements taken
  std::exception_ptr entry_error;  // the first error the reader threw (nothing was taken after it)
};

// Parses `text`, giving each object element of the top-level array `key` to `reader`, in order, and
// keeping none of them in `rest`. An error of the reader waits in entry_error, for the caller to rethrow
// after its own checks of `rest` (a format version, a checksum), which come first.
// Throws nlohmann::json::exception when `text` is not JSON, and Corruption "<malformed> (\"<key>\" twice)"
// when `key` appears twice at the top level (the second array would silently replace the first).
TakenEntries parse_taking_entries(const std::string& text, const std::string& key, EntryReader& reader,
                                  const std::string& malformed);

// The same, with each element handed over as a tree of its own (one element's at a time), for a caller
// whose entries are few or small enough that their trees cost nothing that matters.
TakenEntries parse_taking_entries(const std::string& text, const std::string& key,
                                  const std::function<void(const nlohmann::json&)>& take_entry,
                                  const std::string& malformed);

// After entry_error: Corruption "<malformed> (...)" unless `rest` is an object whose `key` is an array
// left empty, i.e. every element was an object taken out ("a file entry is not an object" otherwise).
void refuse_untaken_entries(const nlohmann::json& rest, const std::string& key, const std::string& malformed);

}  // namespace pgvault
