#include "common/repo/json_entries.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/base/errors.h"
#include "support/test_support.h"

using namespace pgvault;
using nlohmann::json;

namespace {

// Writes down what the parse hands over: "key=value" per member, "|" per element end.
struct Recorder : EntryReader {
  std::vector<std::string> seen;
  int fail_at_end = -1;  // throw at the end of this element (0 = the first)
  int ends = 0;
  void member(const std::string& key, json&& value) override { seen.push_back(key + "=" + value.dump()); }
  void end() override {
    if (ends++ == fail_at_end) throw std::runtime_error("element " + std::to_string(fail_at_end));
    seen.push_back("|");
  }
};

}  // namespace

// The elements of the top-level array leave the tree and reach the reader member by member, nested
// values as trees; everything else, including an array of the same name deeper down, stays in the tree.
TEST(JsonEntries, ElementsGoToTheReaderAndTheRestStays) {
  const std::string text = R"({"a": {"files": [{"x": 1}]}, "files": [{"p": "s", "n": -2, "o": {"q": [1, {"r": null}]}},
                               {}, {"t": true, "f": 1.5}], "z": [[{"w": 1}]]})";
  Recorder r;
  TakenEntries taken = parse_taking_entries(text, "files", r, "m");
  EXPECT_FALSE(taken.entry_error);
  EXPECT_EQ(r.seen, (std::vector<std::string>{"p=\"s\"", "n=-2", R"(o={"q":[1,{"r":null}]})", "|", "|", "t=true",
                                              "f=1.5", "|"}));
  EXPECT_EQ(taken.rest, json::parse(R"({"a": {"files": [{"x": 1}]}, "files": [], "z": [[{"w": 1}]]})"));
  EXPECT_NO_THROW(refuse_untaken_entries(taken.rest, "files", "m"));
}

// The reader's first error waits in entry_error and nothing is handed over after it.
TEST(JsonEntries, AReaderErrorWaitsAndStopsTheTaking) {
  Recorder r;
  r.fail_at_end = 0;
  TakenEntries taken = parse_taking_entries(R"({"files": [{"a": 1}, {"b": 2}], "format": 9})", "files", r, "m");
  ASSERT_TRUE(taken.entry_error);
  EXPECT_EQ(r.seen, (std::vector<std::string>{"a=1"}));
  EXPECT_EQ(taken.rest, json::parse(R"({"files": [], "format": 9})"));
}

// What the reader cannot be given, or what would hide elements from it, is refused.
TEST(JsonEntries, WhatIsNotAnEntryIsRefused) {
  Recorder r;
  EXPECT_THROW_KIND(parse_taking_entries(R"({"files": [], "files": []})", "files", r, "m"), ErrorKind::Corruption);
  EXPECT_THROW(parse_taking_entries(R"({"files": [{"a": 1}, )", "files", r, "m"), json::exception);
  EXPECT_THROW(parse_taking_entries(R"({"files": []} x)", "files", r, "m"), json::exception);
  auto refused = [&](const std::string& text, const std::string& needle) {
    TakenEntries taken = parse_taking_entries(text, "files", r, "m");
    try {
      refuse_untaken_entries(taken.rest, "files", "m");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Corruption);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused(R"({"files": [{"a": 1}, 7]})", "a file entry is not an object");
  refused(R"({"files": [[{"a": 1}]]})", "a file entry is not an object");
  refused(R"({"files": {"a": 1}})", "\"files\" is not an array");
  refused(R"({"filez": []})", "no \"files\"");
  refused(R"([{"files": []}])", "no \"files\"");
}

// The tree form gives each element whole, a repeated key's last value included as nlohmann's parse would.
TEST(JsonEntries, TreeFormGivesEachElementWhole) {
  std::vector<json> elements;
  auto take = [&](const json& e) { elements.push_back(e); };
  TakenEntries taken = parse_taking_entries(R"({"Files": [{"a": 1, "b": [2]}, {"a": 3, "a": 4}]})", "Files", take, "m");
  EXPECT_FALSE(taken.entry_error);
  ASSERT_EQ(elements.size(), 2u);
  EXPECT_EQ(elements[0], json::parse(R"({"a": 1, "b": [2]})"));
  EXPECT_EQ(elements[1], json::parse(R"({"a": 4})"));
}
