#include "common/repo/json_entries.h"

#include "common/base/errors.h"

namespace pgvault {

using nlohmann::json;

TakenEntries parse_taking_entries(const std::string& text, const std::string& key,
                                  const std::function<void(const json&)>& take_entry, const std::string& malformed) {
  TakenEntries out;
  std::string top_key;  // the top-level key being parsed
  bool key_seen = false;
  json::parser_callback_t take = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      top_key = parsed.get<std::string>();
      if (top_key == key) {
        if (key_seen) throw Error(ErrorKind::Corruption, malformed + " (\"" + key + "\" twice)");
        key_seen = true;
      }
    } else if (event == json::parse_event_t::object_end && depth == 2 && top_key == key) {
      if (!out.entry_error) {
        try {
          take_entry(parsed);
        } catch (...) {
          out.entry_error = std::current_exception();
        }
      }
      return false;
    }
    return true;
  };
  out.rest = json::parse(text, take);
  return out;
}

void refuse_untaken_entries(const json& rest, const std::string& key, const std::string& malformed) {
  auto it = rest.find(key);  // end() also when `rest` is not an object
  if (it == rest.end()) throw Error(ErrorKind::Corruption, malformed + " (no \"" + key + "\")");
  if (!it->is_array()) throw Error(ErrorKind::Corruption, malformed + " (\"" + key + "\" is not an array)");
  if (!it->empty()) throw Error(ErrorKind::Corruption, malformed + " (a file entry is not an object)");
}

}  // namespace pgvault
