// The marks object of a backup (marks.h).
#include "common/repo/marks.h"

#include <nlohmann/json.hpp>

#include "common/base/errors.h"
#include "common/base/io.h"
#include "common/repo/layout.h"
#include "common/repo/repo.h"
#include "common/repo/repo_json.h"

namespace pgvault {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxKey = 64;
constexpr std::size_t kMaxValue = 1024;
constexpr std::size_t kMaxAnnotations = 64;

bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

}  // namespace

std::string annotation_problem(const std::string& key, const std::string& value) {
  if (key.empty() || key.size() > kMaxKey) return "key \"" + key.substr(0, kMaxKey) + "\" must have 1 to 64 characters";
  for (char c : key) {
    if (!key_char(c)) return "key \"" + key + "\" may hold only letters, digits, '_', '.' and '-'";
  }
  if (value.size() > kMaxValue) return "value of " + key + " is longer than 1024 characters";
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return "value of " + key + " holds a character that is not printable ASCII";
  }
  return "";
}

std::pair<std::string, std::string> parse_annotation(const std::string& text, const std::string& flag) {
  auto eq = text.find('=');
  if (eq == std::string::npos) throw Error(ErrorKind::InvalidInput, flag + " " + text + ": expected KEY=VALUE");
  std::string key = text.substr(0, eq), value = text.substr(eq + 1);
  if (std::string why = annotation_problem(key, value); !why.empty()) {
    throw Error(ErrorKind::InvalidInput, flag + ": " + why);
  }
  return {key, value};
}

void set_annotation(BackupMarks& m, const std::string& key, const std::string& value) {
  if (value.empty()) {
    m.annotations.erase(key);
    return;
  }
  m.annotations[key] = value;
  if (m.annotations.size() > kMaxAnnotations) {
    throw Error(ErrorKind::InvalidInput, "backup " + m.label + ": more than 64 annotations");
  }
}

std::string BackupMarks::to_json() const {
  json j = {{"format", kMarksFormat}, {"label", label}, {"keep", keep}, {"annotations", annotations}, {"time", time}};
  return j.dump(2) + "\n";
}

BackupMarks BackupMarks::from_json(const std::string& text, const std::string& what) {
  BackupMarks m;
  try {
    json j = json::parse(text);
    if (repo_json::integer_in_range<int>(j.at("format")) != kMarksFormat) {
      throw Error(ErrorKind::Corruption, what + ": unknown marks format " + j.at("format").dump());
    }
    m.label = j.at("label").get<std::string>();
    m.keep = j.at("keep").get<bool>();
    m.annotations = j.at("annotations").get<std::map<std::string, std::string>>();
    m.time = j.value("time", "");
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, what + ": malformed marks: " + e.what());
  }
  if (m.annotations.size() > kMaxAnnotations) throw Error(ErrorKind::Corruption, what + ": more than 64 annotations");
  for (const auto& [k, v] : m.annotations) {
    if (std::string why = annotation_problem(k, v); !why.empty()) throw Error(ErrorKind::Corruption, what + ": " + why);
  }
  return m;
}

std::optional<BackupMarks> read_marks(Repository& repo, const std::string& label) {
  const std::string key = keys::backup_marks(label);
  if (!repo.storage().head(key)) return std::nullopt;  // rare (a listing showed it, or a mark is changed)
  Bytes data = repo.get_bytes(key);
  BackupMarks m = BackupMarks::from_json(std::string(data.begin(), data.end()), repo.describe() + "/" + key);
  if (m.label != label) throw Error(ErrorKind::Corruption, repo.describe() + "/" + key + ": marks are for backup " + m.label);
  return m;
}

void write_marks(Repository& repo, const BackupMarks& m) {
  std::string text = m.to_json();
  repo.put_bytes(keys::backup_marks(m.label), as_bytes(text));
}

}  // namespace pgvault
