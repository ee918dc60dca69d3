// Marking an existing backup kept, releasing it, and annotating it: retention-prune --keep LABEL,
// --release LABEL, --annotate LABEL KEY=VALUE (README "Kept backups" says why: the mark is
// retention's input, and it is changed under retention's own lock, so a mark never races a running
// prune between its plan and its deletes).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/config/config.h"
#include "common/repo/repo.h"

namespace pgvault {

struct MarkChange {
  std::string label;
  std::optional<bool> keep;  // set: mark kept (true) or release (false); nullopt: unchanged
  std::vector<std::pair<std::string, std::string>> annotations;  // checked (parse_annotation); "" removes
};

// Fills `change` from retention-prune's --keep, --release and --annotate (pairs LABEL, KEY=VALUE; every
// one must name the same backup as --keep/--release and each other: InvalidInput otherwise). False when
// none is given (a prune).
bool mark_change(MarkChange& change, const std::optional<std::string>& keep, const std::optional<std::string>& release,
                 const std::vector<std::pair<std::string, std::string>>& annotate);

// Applies `change` to the backup's marks under the lock "retention" (taken like a prune: stale_after,
// now) and returns the line retention-prune prints. NotFound when `label` is not a complete backup.
// Marks that cannot be read are replaced (a warning names what was lost).
std::string run_mark(Repository& repo, const MarkChange& change, std::int64_t stale_after, std::int64_t now);

// retention-prune with --keep/--release/--annotate: opens the configured repository (which must exist),
// runs run_mark and prints its line. Returns the exit code (0).
int run_mark_tool(const Config& config, const MarkChange& change, std::int64_t stale_after, std::int64_t now);

}  // namespace pgvault
