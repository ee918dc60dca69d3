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
// An outage of a lagging repository never stalls the call (issue 14). In a wal-push call (Patience::Call)
// a repository with required = false:
// - gets a bounded budget: it is opened with retry_time = kLaggingRetryTime, connect_timeout at most
//   kLaggingConnectTimeout and timeout at most kLaggingTimeout (its own settings when smaller);
// - is not pushed into while it owes files: the file is recorded as owed (bounds as above) and the
//   call's catch-up pushes what is owed, oldest first (a repository owing one file after a blip is
//   drained within the call, and the next calls push directly again);
// - backs off: after a push or catch-up there failed, the call records a retry-after time (now +
//   kLaggingBackOff, in its owed queue folder); before then calls only record what it is owed, so
//   during a stall at most one call per back-off period waits for the bounded timeout.
// A skipped repository cannot report in the call an error that says the data is wrong; its catch-up
// does: the file stays owed (never dropped), the error is logged, and `wal-push --catch-up` fails with
// that error's kind. `wal-push --catch-up` (Patience::Full) uses every repository's own settings and
// ignores the back-off. Required repositories are never capped, skipped or backed off.
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
#include "common/base/errors.h"

namespace pgvault {

// The budget of a lagging (required = false) repository in a wal-push call, above: seconds of retries,
// seconds to connect, seconds without progress before a request is cut, seconds of back-off.
inline constexpr int kLaggingRetryTime = 1;
inline constexpr int kLaggingConnectTimeout = 5;
inline constexpr int kLaggingTimeout = 10;
inline constexpr std::int64_t kLaggingBackOff = 30;

// Call: a wal-push call (bounded budget, skips and back-off for lagging repositories); Full: `wal-push
// --catch-up` (every repository's own settings, no back-off).
enum class Patience { Call, Full };

// One repository of a push to several.
struct PushTarget {
  Config config;                                     // narrowed to it (select_repository)
  std::function<std::unique_ptr<Storage>()> open;    // a new storage connection (thread-safe to call)
  Patience patience = Patience::Call;
  const std::string& name() const { return config.repository.name; }
  // Allowed to lag and in a call: gets the bounded budget, the skips and the back-off.
  bool bounded() const { return !config.repository.required && patience == Patience::Call; }
};
// Every configured repository, each opened with open_storage; with Patience::Call the lagging ones
// with the bounded budget.
std::vector<PushTarget> push_targets(const Config& config, Patience patience = Patience::Call);

// Failures a lagging repository may owe: the storage was unavailable. Anything else says the data, the
// key or the configuration is wrong, which must never be postponed silently.
bool may_owe(ErrorKind kind);

// Whether `t` is bounded and its back-off time is after `now` (Unix seconds). False when unsure.
bool backing_off(const PushTarget& t, std::int64_t now);
// Records that `t` (when bounded) is not to be tried before now + kLaggingBackOff. Best effort.
void back_off(const PushTarget& t, std::int64_t now);

// Pushes `path` into every target at once, as described above. `now` (Unix seconds) dates new owed
// entries. The names of the repositories whose push failed are added to `failed` when not null.
// Returns the result of the first repository (in order) that stored the file.
PushResult push_everywhere(const std::vector<PushTarget>& targets, const std::string& path,
                           std::set<std::string>* failed = nullptr, std::int64_t now = 0);

struct CatchUpResult {
  std::size_t pushed = 0;  // owed files now durable where they were owed
  std::size_t owed = 0;    // still owed afterwards (in the queues that were worked on)
  std::optional<Error> refused;  // the first failure that says the data is wrong (the file stays owed)
};
// Pushes what the targets are owed, oldest first, up to `parallel` files at once, each read back from
// another target that holds it. Skips the targets named in `skip`, the bounded ones backing off (neither
// pushed into nor read from) and, when `only` is set, every target but that one; a bounded target that
// fails backs off. Starts no new file after `deadline`. Failures are logged (warnings), never thrown.
CatchUpResult catch_up(const std::vector<PushTarget>& targets, const std::set<std::string>& skip, int parallel,
                       std::optional<std::chrono::steady_clock::time_point> deadline, const std::string& only = "");

// `wal-push --catch-up [--repo NAME]`: drains the queues (every one, or NAME's) of `config`'s
// repositories with their own settings (Patience::Full), then forgets their back-off; throws the first
// error that says the data is wrong, else Transient naming what is still owed when something is.
void catch_up_command(const Config& config, const std::string& only);

}  // namespace pgvault
