// A backup's marks: "kept" (retention never deletes it, nor what it needs, until it is released) and
// key=value annotations. The manifest is written once, so the marks live in their own small object,
// backups/<label>/marks (keys::backup_marks), encoded like every object and replaced atomically when they
// change (docs/FORMAT.md). base-push --keep/--annotate writes it before the manifest; retention-prune
// --keep/--release/--annotate rewrites it later (common/retention/marks_run.cpp).
//
// JSON: {"format": 1, "label": L, "keep": bool, "annotations": {KEY: VALUE, ...}, "time": ISO 8601 UTC}.
// Keys: 1..64 of [A-Za-z0-9_.-]; values: 0..1024 printable ASCII characters (space included); at most
// 64 annotations. Decoding checks the same, so an object edited by hand cannot smuggle control
// characters into a report.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>

namespace pgvault {

class Repository;

inline constexpr int kMarksFormat = 1;

struct BackupMarks {
  std::string label;
  bool keep = false;
  std::map<std::string, std::string> annotations;
  std::string time;   // when last written
  std::string error;  // set by load_inventory when the object exists but cannot be read

  bool empty() const { return !keep && annotations.empty(); }
  std::string to_json() const;
  // Corruption naming `what` on malformed input or a key/value the checks below refuse.
  static BackupMarks from_json(const std::string& text, const std::string& what);
};

// "" when the annotation is acceptable, else why not ("key \"a b\" has a character other than ...").
std::string annotation_problem(const std::string& key, const std::string& value);
// Parses "KEY=VALUE" (the first '=' splits) and checks it: InvalidInput naming `flag` and the text.
std::pair<std::string, std::string> parse_annotation(const std::string& text, const std::string& flag);
// Sets `key` to `value` in `m` ("" removes it); InvalidInput when the result has too many annotations.
void set_annotation(BackupMarks& m, const std::string& key, const std::string& value);

// The marks of `label`; nullopt when it has none. Corruption when the object cannot be decoded.
std::optional<BackupMarks> read_marks(Repository& repo, const std::string& label);
// Writes (replaces) the marks of m.label, committed atomically.
void write_marks(Repository& repo, const BackupMarks& m);

}  // namespace pgvault
