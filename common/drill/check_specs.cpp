// The pure parts of the drill's checks: table specs and SQL statements (unit-tested).
#include <cctype>

#include "common/drill/drill.h"

namespace pgvault {

CountSpec parse_count_spec(const std::string& text) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : text) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  for (const auto& p : parts) {
    if (parts.size() != 3 || p.empty()) {
      throw Error(ErrorKind::InvalidInput, "table to count \"" + text + "\": expected database.schema.table");
    }
  }
  return {parts[0], parts[1], parts[2]};
}

std::vector<CountSpec> parse_count_list(const std::string& text) {
  std::vector<CountSpec> out;
  std::string cur;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    char c = i < text.size() ? text[i] : ',';
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(parse_count_spec(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

namespace {

// Index just past the quoted or commented text starting at i (text[i] opens it), or npos when text[i]
// opens nothing.
std::size_t skip_quoted(const std::string& s, std::size_t i) {
  auto until = [&](std::size_t from, const std::string& end) {
    std::size_t e = s.find(end, from);
    return e == std::string::npos ? s.size() : e + end.size();
  };
  if (s[i] == '\'' || s[i] == '"') return until(i + 1, std::string(1, s[i]));
  if (s.compare(i, 2, "--") == 0) return until(i + 2, "\n");
  if (s.compare(i, 2, "/*") == 0) return until(i + 2, "*/");
  if (s[i] == '$') {
    std::size_t close = s.find('$', i + 1);
    if (close == std::string::npos) return std::string::npos;
    std::string tag = s.substr(i, close - i + 1);
    for (std::size_t k = 1; k + 1 < tag.size(); ++k) {
      if (!std::isalnum(static_cast<unsigned char>(tag[k])) && tag[k] != '_') return std::string::npos;
    }
    return until(close + 1, tag);
  }
  return std::string::npos;
}

// Index of the first character of `stmt` that is neither blank nor in a comment (size() when none).
std::size_t skip_blank_and_comments(const std::string& stmt) {
  std::size_t i = 0;
  while (i < stmt.size()) {
    if (std::isspace(static_cast<unsigned char>(stmt[i]))) {
      ++i;
    } else if (stmt.compare(i, 2, "--") == 0 || stmt.compare(i, 2, "/*") == 0) {
      i = skip_quoted(stmt, i);
    } else {
      break;
    }
  }
  return i;
}

}  // namespace

std::vector<std::string> split_sql(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  auto flush = [&](std::size_t end) {
    std::string stmt = text.substr(start, end - start);
    std::size_t a = skip_blank_and_comments(stmt);
    if (a < stmt.size()) {
      std::size_t b = stmt.find_last_not_of(" \t\r\n");
      out.push_back(stmt.substr(a, b - a + 1));
    }
    start = end + 1;
  };
  for (std::size_t i = 0; i < text.size();) {
    std::size_t skip = skip_quoted(text, i);
    if (skip != std::string::npos) {
      i = skip;
    } else if (text[i] == ';') {
      flush(i);
      ++i;
    } else {
      ++i;
    }
  }
  if (start < text.size()) flush(text.size());
  return out;
}

std::string failure_name(DrillFailure f) {
  switch (f) {
    case DrillFailure::Restore: return "restore-failed";
    case DrillFailure::Server: return "server-failed";
    case DrillFailure::Check: return "check-failed";
    case DrillFailure::None: break;
  }
  return "";
}

}  // namespace pgvault
