// run_mark (marks_run.h).
#include "common/retention/marks_run.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/base/errors.h"
#include "common/base/time.h"
#include "common/repo/backups.h"
#include "common/repo/lock.h"
#include "common/repo/marks.h"

namespace pgvault {

namespace {

// The backup's current marks; empty ones when it has none or they cannot be read (warned).
BackupMarks current_marks(Repository& repo, const std::string& label) {
  try {
    if (auto m = read_marks(repo, label)) return *m;
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Corruption) throw;
    spdlog::warn("{}; replacing them", e.what());
  }
  BackupMarks m;
  m.label = label;
  return m;
}

std::string describe(const BackupMarks& m) {
  std::string out = "backup " + m.label + (m.keep ? ": kept" : ": not kept");
  for (const auto& [k, v] : m.annotations) out += ", " + k + "=" + v;
  return out;
}

}  // namespace

bool mark_change(MarkChange& change, const std::optional<std::string>& keep, const std::optional<std::string>& release,
                 const std::vector<std::pair<std::string, std::string>>& annotate) {
  if (keep) change = {*keep, true, {}};
  if (release) change = {*release, false, {}};
  for (const auto& [label, text] : annotate) {
    if (change.label.empty()) change.label = label;
    if (label != change.label) {
      throw Error(ErrorKind::InvalidInput, "--keep, --release and --annotate name different backups (" + change.label +
                                               ", " + label + "): one backup per run");
    }
    change.annotations.push_back(parse_annotation(text, "--annotate " + label));
  }
  return !change.label.empty();
}

std::string run_mark(Repository& repo, const MarkChange& change, std::int64_t stale_after, std::int64_t now) {
  RepositoryLock lock = RepositoryLock::acquire(repo.storage(), "retention", {"retention-prune", stale_after, now});
  try {
    read_manifest(repo, change.label);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
    throw Error(ErrorKind::NotFound, "backup " + change.label + " is not a complete backup in " + repo.describe());
  }
  BackupMarks m = current_marks(repo, change.label);
  if (change.keep) m.keep = *change.keep;
  for (const auto& [k, v] : change.annotations) set_annotation(m, k, v);
  m.time = format_utc(now);
  write_marks(repo, m);
  lock.release();
  return describe(m) + "\n";
}

int run_mark_tool(const Config& config, const MarkChange& change, std::int64_t stale_after, std::int64_t now) {
  Repository repo(open_storage(config), config);
  repo.require_initialised();
  std::fputs(run_mark(repo, change, stale_after, now).c_str(), stdout);
  return 0;
}

}  // namespace pgvault
