// The work of wal-push (archive_command) and wal-fetch (restore_command). The contract with PostgreSQL
// is in docs/EXIT-CODES.md; the tools' main() only map the Error kinds thrown here to exit codes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/repo/repo.h"

namespace pgvault {

enum class PushOutcome {
  Stored,         // newly stored, durable
  AlreadyStored,  // the repository already held this file with identical content (verified)
  Repaired,       // the stored copy claimed identical content but failed verification; rewritten
};

struct PushResult {
  PushOutcome outcome = PushOutcome::Stored;
  Digest digest;  // of the file's content
};

// Archives the file at `path` (absolute, or relative to the working directory, which PostgreSQL sets to
// the data directory). Returns only when the object is durable. A whole segment also gets its WAL index
// (repo/wal_index.h), scanned while it is uploaded and written (overwritten) after it is durable, also
// when the segment was already stored (a retry after the index write failed); a segment whose records
// the reader refuses is archived without one (a warning). Throws:
//   InvalidInput  path missing/unreadable, not a WAL file name, wrong segment size
//   Duplicate     the repository holds this name with different content (both digests in the message)
//   Foreign       the segment's system identifier differs from the repository's
//   and storage/codec kinds otherwise.
PushResult push_wal(Repository& repo, const std::string& path);

// What archive_command runs: serves `path` from a look-ahead record when one matches (see spool.h),
// else pushes it; only the outcome for `path` decides the result. With [push] parallel > 1 the files
// PostgreSQL has marked .ready after it (pg_wal/archive_status) are pushed ahead and recorded once
// durable, in one of two ways:
// - detached (one repository and `spawn_worker` given): once `path` is durable, when other .ready files
//   are waiting and no push worker holds the spool's push.lock, `spawn_worker` starts one (push_worker).
//   While a worker runs, the call holds a PushClaim on `path` before pushing it: when the worker is
//   pushing that very file the call waits for it (until the worker dies, or fails with Transient
//   after 2 minutes rather than push beside it) and then uses its record.
// - in the call (several repositories, no `spawn_worker`, or it returned false): [push] parallel - 1
//   threads push up to 4 * parallel of them beside the called file, each taking the next as soon as it
//   finishes one, the calling thread too once `path` is durable, none started later than 2 s after
//   that; the call returns when all started ones are done.
PushOutcome archive_command(const Config& config, const std::string& path,
                            const std::function<bool()>& spawn_worker = {});

// Re-executes this program (like spawn_prefetch_worker) with kPushWorkerEnv=<path>: the push worker.
// False when no process could be started.
inline constexpr const char* kPushWorkerEnv = "PGVAULT_PUSH_WORKER";
bool spawn_push_worker(int argc, char** argv, const std::string& path);

// The detached push worker (in the data directory, like its parent call for `path`): with one
// repository and [push] parallel > 1, takes the spool's push.lock (or returns: another worker runs)
// and pushes the .ready files of archive_status (beside `path`'s folder) in the order PostgreSQL
// archives them, [push] parallel at a time (on a store without atomic create, kPushInFlightPerEncoder
// times as many in flight, [push] parallel of them encoding), each under a PushClaim, skipping `path` (its call pushed
// it) and files with a record or claimed by a call; writes each file's record only once it is durable
// and unchanged. Stops when no new .ready file appeared for kPushWorkerIdle, after kPushWorkerMaxFiles
// files or after kPushWorkerMaxTime. Never touches archive_status. A failed push is only logged
// (PostgreSQL's own call pushes the file and reports the error).
void push_worker(const Config& config, const std::string& path);

enum class FetchOutcome { Fetched, Missing };

// Restores WAL file `name` (a segment, history, .partial or .backup file name) to `dest` (absolute or
// relative to the working directory): decoded and verified into a temporary file beside it, renamed
// into place only after verification. Before anything is read the repository's identity must exist
// (else Config: a wrong path or bucket must not look like the end of the WAL) and, when
// `control_sysid` is given (the data directory's global/pg_control), name that database system (else
// Foreign). A segment or .partial file must be a whole segment whose first page header passes
// check_segment_header (wal.h) against the name and the identity (Foreign or Corruption) before it is
// renamed into place. Missing means definitely not in the archive: the repository answered and its
// identity matched. When `digest` is not null it receives the verified plaintext digest.
FetchOutcome fetch_wal(Repository& repo, const std::string& name, const std::string& dest,
                       std::optional<std::uint64_t> control_sysid = std::nullopt, Digest* digest = nullptr);

// How long wal-fetch tries a repository that has another one after it.
enum class FetchPatience {
  Full,             // each repository for its whole retry_time
  FallThroughFast,  // all but the last for one attempt (retry_time 1 s): a nearest repository that is
                    // down costs every call a failed connect, not its whole retry budget
};

// The repositories wal-fetch reads, in configured order ([repository] first, then each
// [repositories.NAME]; only the one --repo names when the configuration was narrowed to it). Opening
// makes no request.
std::vector<std::unique_ptr<Repository>> open_fetch_repositories(const Config& config,
                                                                  FetchPatience patience = FetchPatience::Full);

// fetch_wal across several repositories of one database system, tried in order (nearest first): the
// first good copy is handed over. A repository that answers "not there" (its identity present and
// matching) or fails (unreachable after its bounded retries, corrupt object, wrong key, no identity,
// another database system than pg_control's or than the first identity met) is passed over; a failed
// copy never reaches `dest`. Missing only when every repository answered "not there"; when one failed
// and none served, throws the first failure's kind with every repository's answer in the message. With
// one repository this is fetch_wal itself.
FetchOutcome fetch_wal_any(const std::vector<Repository*>& repos, const std::string& name, const std::string& dest,
                           std::optional<std::uint64_t> control_sysid = std::nullopt, Digest* digest = nullptr);

// The identity recovery checks against: that of the first of `repos` whose identity can be read and
// matches `control_sysid` (checked_identity, wal_checks.h); throws the first repository's error when
// none can.
Identity fetch_identity(const std::vector<Repository*>& repos, std::optional<std::uint64_t> control_sysid);

// Whose prefetch spool wal-fetch uses: the repositories' descriptions joined by " + " (with one
// repository its description, as before several repositories existed).
std::string fetch_spool_owner(const std::vector<Repository*>& repos);

// What restore_command runs, in the data directory: reads the system identifier from global/pg_control
// when it exists (Corruption when it is not a valid pg_control), removes temporary files that killed
// earlier calls left beside `dest` (remove_stale_temp_files), then hands over `name` from the prefetch
// spool of these repositories and this system when a verified copy is there (see spool.h), else
// fetches it with fetch_wal_any from every configured repository in order; then, when [fetch] prefetch
// > 0, makes sure a detached worker is fetching the next segments of the same timeline into the spool. `spawn_worker` starts that worker (the tool
// re-executes itself); it is not called when a worker is already running. On "missing" (of any file)
// the spool is emptied and a running worker asked to stop: recovery is ending or waiting for
// streaming.
FetchOutcome restore_command(const Config& config, const std::string& name, const std::string& dest,
                             const std::function<void()>& spawn_worker);

// Empties every prefetch spool folder of the configured repositories, together and each alone
// (whatever database system it was for): pitr-prepare calls it, so a restore never starts beside segments prefetched for an earlier
// recovery. Best effort: a spool that cannot be read is left alone.
void clear_prefetch_spool(const Config& config);

// Re-executes this program (/proc/self/exe with the same arguments), detached in its own session with
// stdin/stdout on /dev/null and kPrefetchWorkerEnv=<name> in its environment: the prefetch worker.
inline constexpr const char* kPrefetchWorkerEnv = "PGVAULT_PREFETCH_WORKER";
void spawn_prefetch_worker(int argc, char** argv, const std::string& name);

// The detached worker (in the data directory, like its parent): fetches up to [fetch] prefetch segments
// following `name` into the spool of these repositories and this system, skipping those already there,
// from the repositories in order with the checks of fetch_wal_any; stops at the first one missing from the archive, at the first error, or when
// asked to (prefetch.stop, then it empties the spool). A failure to write the spool (a full disk) is
// logged as a warning once, then at debug level until a worker gets through its batch without one.
void prefetch_worker(const Config& config, const std::string& name);

// How wal-fetch reports an error other than "missing": abort recovery (exit > 125) or behave as missing
// (exit 1, so a standby falls back to streaming and retries). on_error "auto" picks Missing when
// `datadir` holds standby.signal and Abort otherwise.
enum class FetchErrorMode { Abort, Missing };
FetchErrorMode fetch_error_mode(const std::string& on_error, const std::string& datadir = ".");

}  // namespace pgvault
