// wal-push into several repositories ([repository] and [repositories.NAME], config.h): the file goes to
// every repository at once (one thread and one storage connection each). The call succeeds only when
// the file is durable in every repository marked required and at least one repository stored it; a
// repository with required = false that fails for want of storage (transient or local I/O errors) gets
// the file recorded in its owed queue (repo/owed.h), durably, before the call succeeds, unless that
// would pass its bounds (max_owed_segments, max_owed_age: then the call fails naming the repository and
// the bound). Errors that say the data itself is wrong (different content under the name, another
// database system, corruption, a refused key, a missing repository, bad input or configuration) fail
// the call whichever repository reports them.
//
// Encoding: each repository encodes the file itself: the file is read from the page cache and
// compressed once per repository, the pushes overlapping in time. The format would let repositories with
// the same compression and the same master key bytes (a key file, or none; a passphrase is stretched
// with a salt of each repository's own key record, so its master keys differ) share one encoding: an
// object depends only on the master key, its own random salt, the name it is bound to (the same key in
// every repository) and the codec settings (docs/FORMAT.md 1). Not done: push_wal encodes inside
// Repository::put_object, and sharing needs a push_wal that stores given encoded bytes (with the
// same-name check, repair and WAL index steps it runs today).
//
// Catch-up: what is owed is pushed later, oldest first, several at once, its content read back (with
// fetch_wal's checks) from a repository that holds it; the same-name/different-content refusal of
// push_wal means nothing is ever stored twice with different content.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/archive/archive.h"

namespace pgvault {

// One repository of a push to several.
struct PushTarget {
  Config config;                                     // narrowed to it (select_repository)
  std::function<std::unique_ptr<Storage>()> open;    // a new storage connection (thread-safe to call)
  const std::string& name() const { return config.repository.name; }
};
// Every configured repository, each opened with open_storage.
std::vector<PushTarget> push_targets(const Config& config);

// Pushes `path` into every target at once, as described above. `now` (Unix seconds) dates new owed
// entries. The names of the repositories whose push failed are added to `failed` when not null.
// Returns the result of the first repository (in order) that stored the file.
PushResult push_everywhere(const std::vector<PushTarget>& targets, const std::string& path,
                           std::set<std::string>* failed = nullptr, std::int64_t now = 0);

struct CatchUpResult {
  std::size_t pushed = 0;  // owed files now durable where they were owed
  std::size_t owed = 0;    // still owed afterwards (in the queues that were worked on)
};
// Pushes what the targets are owed, oldest first, up to `parallel` files at once, each read back from
// another target that holds it. Skips the targets named in `skip` and, when `only` is set, every target
// but that one. Starts no new file after `deadline`. Failures are logged (warnings), never thrown.
CatchUpResult catch_up(const std::vector<PushTarget>& targets, const std::set<std::string>& skip, int parallel,
                       std::optional<std::chrono::steady_clock::time_point> deadline, const std::string& only = "");

// `wal-push --catch-up [--repo NAME]`: drains the queues (every one, or NAME's) of `config`'s
// repositories; throws Transient naming what is still owed when something is.
void catch_up_command(const Config& config, const std::string& only);

}  // namespace pgvault
