// The exit-code table in the code (common/cli/exit_codes.cpp) against docs/EXIT-CODES.md, both ways:
// every tool in one is in the other, every code a tool can exit with is a row of its table in the doc
// and every row is a code it can exit with, and the doc's "Codes by error kind" line of each tool says
// exactly which kind takes which code.
#include "common/cli/exit_codes.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

using namespace pgvault;

namespace {

constexpr ErrorKind kAllKinds[] = {
    ErrorKind::NotFound, ErrorKind::Duplicate,   ErrorKind::Corruption, ErrorKind::Auth,
    ErrorKind::Transient, ErrorKind::Io,         ErrorKind::Config,     ErrorKind::InvalidInput,
    ErrorKind::Foreign,  ErrorKind::Conflict,    ErrorKind::Interrupted, ErrorKind::NotInitialised,
    ErrorKind::Internal};

// What the doc says about one tool.
struct DocTool {
  std::set<int> rows;                       // the codes of its table's rows
  std::map<std::string, int> by_kind;       // kind name (or "any other", "any on a standby",
                                            // "outcome NAME") -> code, from its "Codes by error kind" line
  int kind_lines = 0;
};

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t`");
  auto e = s.find_last_not_of(" \t`.");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// "invalid-input, config: 2; auth: 5; any other: 1." -> {invalid-input: 2, config: 2, auth: 5, any other: 1}
void parse_kind_line(const std::string& text, DocTool& tool) {
  std::stringstream groups(text);
  std::string group;
  while (std::getline(groups, group, ';')) {
    auto colon = group.rfind(':');
    ASSERT_NE(colon, std::string::npos) << group;
    int code = std::stoi(trim(group.substr(colon + 1)));
    std::stringstream names(group.substr(0, colon));
    std::string name;
    while (std::getline(names, name, ',')) {
      EXPECT_TRUE(tool.by_kind.emplace(trim(name), code).second) << "listed twice: " << name;
    }
  }
}

std::map<std::string, DocTool> parse_doc(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::map<std::string, DocTool> tools;
  const std::regex section(R"(^## ([a-z-]+))");
  const std::regex row(R"(^\| (\d+) \|)");
  const std::string kind_prefix = "Codes by error kind (common/cli/exit_codes.cpp): ";
  DocTool* current = nullptr;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, section)) {
      current = &tools[m[1]];
    } else if (current && std::regex_search(line, m, row)) {
      current->rows.insert(std::stoi(m[1]));
    } else if (current && line.starts_with(kind_prefix)) {
      ++current->kind_lines;
      parse_kind_line(line.substr(kind_prefix.size()), *current);
    }
  }
  std::erase_if(tools, [](const auto& t) { return t.second.rows.empty() && t.second.kind_lines == 0; });
  return tools;
}

// The doc's "Codes by error kind" entries the code's table implies.
std::map<std::string, int> expected_kind_line(const ToolExitCodes& t) {
  std::map<std::string, int> out;
  for (const auto& [kind, code] : t.kinds) out[std::string(kind_name(kind))] = code;
  out["any other"] = t.other;
  if (t.standby >= 0) out["any on a standby"] = t.standby;
  for (const auto& [name, code] : t.outcomes) out["outcome " + std::string(name)] = code;
  return out;
}

const std::string kDoc = std::string(PGVAULT_DOCS_DIR) + "/EXIT-CODES.md";

}  // namespace

TEST(ExitCodes, DocAndTableNameTheSameTools) {
  auto doc = parse_doc(kDoc);
  std::set<std::string> in_doc, in_code;
  for (const auto& [name, _] : doc) in_doc.insert(name);
  for (const auto& t : exit_code_tables()) in_code.insert(std::string(t.tool));
  EXPECT_EQ(in_doc, in_code);
}

TEST(ExitCodes, EveryCodeOfATableIsARowOfTheDocAndBack) {
  auto doc = parse_doc(kDoc);
  for (const auto& t : exit_code_tables()) {
    std::vector<int> codes = all_exit_codes(t);
    std::set<int> code_set(codes.begin(), codes.end());
    EXPECT_EQ(doc[std::string(t.tool)].rows, code_set) << t.tool << ": rows in docs/EXIT-CODES.md vs the table";
  }
}

TEST(ExitCodes, EveryKindOfATableIsOnTheDocsKindLineAndBack) {
  auto doc = parse_doc(kDoc);
  for (const auto& t : exit_code_tables()) {
    const DocTool& d = doc[std::string(t.tool)];
    EXPECT_EQ(d.kind_lines, 1) << t.tool << ": one \"Codes by error kind\" line";
    EXPECT_EQ(d.by_kind, expected_kind_line(t)) << t.tool;
  }
}

TEST(ExitCodes, LookupFollowsTheTable) {
  const auto& push = exit_codes("wal-push");
  EXPECT_EQ(exit_code(push, ErrorKind::Duplicate), 3);
  EXPECT_EQ(exit_code(push, ErrorKind::Transient), 1);
  EXPECT_EQ(exit_code(push, ErrorKind::Duplicate, true), 3);  // the standby rule is wal-fetch's alone
  const auto& fetch = exit_codes("wal-fetch");
  EXPECT_EQ(exit_code(fetch, ErrorKind::Corruption), 200);
  EXPECT_EQ(exit_code(fetch, ErrorKind::Corruption, true), 1);
  EXPECT_EQ(outcome_code(fetch, "missing"), 1);
  EXPECT_EQ(exit_code(exit_codes("pitr-prepare"), ErrorKind::NotInitialised), 3);
  EXPECT_EQ(exit_code(exit_codes("archive-info"), ErrorKind::NotInitialised), 3);
  EXPECT_EQ(exit_code(exit_codes("base-push"), ErrorKind::NotInitialised), 2);
  EXPECT_EQ(outcome_code(exit_codes("archive-info"), "problems"), 1);
  EXPECT_THROW(exit_codes("wal-pull"), Error);
  EXPECT_THROW(outcome_code(push, "missing"), Error);
}

// PostgreSQL's archiver exits on a code above 125, so wal-push must never return one.
TEST(ExitCodes, WalPushNeverExitsAbove125) {
  const auto& push = exit_codes("wal-push");
  for (ErrorKind k : kAllKinds) EXPECT_LE(exit_code(push, k), 125) << kind_name(k);
}

// Any failure of wal-fetch in archive recovery is above 125 (recovery stops), but not 126 or 127.
TEST(ExitCodes, WalFetchAbortsRecoveryOnEveryError) {
  const auto& fetch = exit_codes("wal-fetch");
  for (ErrorKind k : kAllKinds) {
    int code = exit_code(fetch, k);
    EXPECT_GT(code, 127) << kind_name(k);
    EXPECT_LE(code, 255) << kind_name(k);
  }
}
