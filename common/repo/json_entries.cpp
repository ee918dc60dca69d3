#include "common/repo/json_entries.h"

#include <utility>
#include <vector>

#include "common/base/errors.h"

namespace pgvault {

using nlohmann::json;

namespace {

// The handler of json::sax_parse: builds the tree of the text like json::parse would, except for the
// object elements of the top-level array `key`, whose members go to the reader.
class TakingHandler {
 public:
  TakingHandler(const std::string& key, EntryReader& reader, const std::string& malformed)
      : key_(key), reader_(reader), malformed_(malformed) {}

  TakenEntries taken;

  bool null() { return value(nullptr); }
  bool boolean(bool v) { return value(v); }
  bool number_integer(json::number_integer_t v) { return value(v); }
  bool number_unsigned(json::number_unsigned_t v) { return value(v); }
  bool number_float(json::number_float_t v, const std::string&) { return value(v); }
  bool string(std::string& v) { return value(std::move(v)); }
  bool binary(json::binary_t& v) { return value(json(v)); }  // never in a JSON text
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& k);
  bool parse_error(std::size_t, const std::string&, const json::exception& e) { throw e; }

 private:
  bool in_element() const { return !open_.empty() && open_.back() == nullptr; }
  bool value(json&& v);
  bool open(json&& container);
  bool close();
  json* place(json&& v);
  template <typename F>
  void deliver(F&& f);

  const std::string& key_;
  EntryReader& reader_;
  const std::string& malformed_;
  // The open objects and arrays, outermost first; nullptr stands for an element being taken.
  std::vector<json*> open_;
  std::string member_key_;  // the key of the next value in an open object
  std::string nested_key_;  // the key of the taken element's member whose object or array is being built
  json nested_;             // that object or array
  json* entries_ = nullptr;  // the top-level array `key`, once it is open
  bool key_seen_ = false;
};

bool TakingHandler::key(std::string& k) {
  if (open_.size() == 1 && k == key_) {
    if (key_seen_) throw Error(ErrorKind::Corruption, malformed_ + " (\"" + key_ + "\" twice)");
    key_seen_ = true;
  }
  member_key_ = k;
  return true;
}

// Puts a complete value where the text has it; returns where it now is.
json* TakingHandler::place(json&& v) {
  if (open_.empty()) return &(taken.rest = std::move(v));
  json& parent = *open_.back();
  if (parent.is_array()) {
    parent.push_back(std::move(v));
    return &parent.back();
  }
  return &(parent[member_key_] = std::move(v));
}

bool TakingHandler::value(json&& v) {
  if (in_element()) {
    deliver([&] { reader_.member(member_key_, std::move(v)); });
  } else {
    place(std::move(v));
  }
  return true;
}

bool TakingHandler::open(json&& container) {
  if (entries_ && !open_.empty() && open_.back() == entries_ && container.is_object()) {
    open_.push_back(nullptr);  // an element to take: it never becomes a tree
  } else if (in_element()) {
    nested_key_ = member_key_;
    nested_ = std::move(container);
    open_.push_back(&nested_);
  } else {
    json* at = place(std::move(container));
    if (open_.size() == 1 && at->is_array() && member_key_ == key_) entries_ = at;
    open_.push_back(at);
  }
  return true;
}

bool TakingHandler::close() {
  const bool element = open_.back() == nullptr;
  open_.pop_back();
  if (element) {
    deliver([&] { reader_.end(); });
  } else if (in_element()) {  // a member's object or array is complete
    deliver([&] { reader_.member(nested_key_, std::move(nested_)); });
  }
  return true;
}

// After the reader's first error, nothing more goes to it: its state is no longer an entry's.
template <typename F>
void TakingHandler::deliver(F&& f) {
  if (taken.entry_error) return;
  try {
    f();
  } catch (...) {
    taken.entry_error = std::current_exception();
  }
}

// Gives an element to take_entry as a tree of its own.
class TreeReader : public EntryReader {
 public:
  explicit TreeReader(const std::function<void(const json&)>& take_entry) : take_entry_(take_entry) {}
  void member(const std::string& key, json&& value) override { element_[key] = std::move(value); }
  void end() override {
    json element = std::exchange(element_, json::object());
    take_entry_(element);
  }

 private:
  const std::function<void(const json&)>& take_entry_;
  json element_ = json::object();
};

}  // namespace

TakenEntries parse_taking_entries(const std::string& text, const std::string& key, EntryReader& reader,
                                  const std::string& malformed) {
  TakingHandler handler(key, reader, malformed);
  json::sax_parse(text, &handler);
  return std::move(handler.taken);
}

TakenEntries parse_taking_entries(const std::string& text, const std::string& key,
                                  const std::function<void(const json&)>& take_entry, const std::string& malformed) {
  TreeReader reader(take_entry);
  return parse_taking_entries(text, key, reader, malformed);
}

void refuse_untaken_entries(const json& rest, const std::string& key, const std::string& malformed) {
  auto it = rest.find(key);  // end() also when `rest` is not an object
  if (it == rest.end()) throw Error(ErrorKind::Corruption, malformed + " (no \"" + key + "\")");
  if (!it->is_array()) throw Error(ErrorKind::Corruption, malformed + " (\"" + key + "\" is not an array)");
  if (!it->empty()) throw Error(ErrorKind::Corruption, malformed + " (a file entry is not an object)");
}

}  // namespace pgvault
