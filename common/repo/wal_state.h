// Local state records per repository, read by archive-info --check and --prometheus (report/check.h,
// report/prometheus.h), kept under [check] state_dir (local_state.h; leaf "state"), one folder per
// repository (repository_state_name):
// - verify.json: what the last `archive-info --verify` of the repository found: {"format": 1,
//   "repository", "time" (Unix seconds, when it finished), "ok", "scope" ("all": every backup and all
//   WAL), "objects", "bytes", "problems"}. Replaced atomically (temp file + rename) after each verify that
//   reached a verdict.
// - wal-push.counters / wal-fetch.counters: what wal-push / wal-fetch calls did for the repository since
//   the file was created: files handed over and their bytes, wal-fetch's "not in the archive" answers,
//   failures by error kind (kind_name). A few text lines ("pgvault-wal-counters 1", then "KEY VALUE"),
//   updated under an exclusive lock on "<file>.lock": read, add, write a temp file, rename; no fsync (a
//   crash may lose the latest counts or, after a power loss, the file: Prometheus counters tolerate a
//   reset). Bounded: a fixed set of keys; lines it does not know are dropped at the next update.
// A record that cannot be parsed (damaged, or written by something else) is ignored with a warning (a
// counters file is then started again from zero by the next update).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "common/base/errors.h"
#include "common/config/config.h"

namespace pgvault {

// The folder of `config`'s repository ([repository], narrowed by select_repository). Created by writers.
std::string repository_state_dir(const Config& config, bool create);

struct VerifyRecord {
  std::int64_t time = 0;       // Unix seconds
  bool ok = false;             // no problem found
  std::string scope = "all";
  std::uint64_t objects = 0, bytes = 0, problems = 0;
};
// Throws Io when the record cannot be written.
void write_verify_record(const Config& config, const VerifyRecord& r);
// nullopt when there is none (or it is damaged: a warning).
std::optional<VerifyRecord> read_verify_record(const Config& config);

enum class WalTool { Push, Fetch };
const char* wal_tool_name(WalTool t);  // "wal-push", "wal-fetch"

struct WalCounters {
  std::uint64_t files = 0;    // archived (push) / fetched (fetch)
  std::uint64_t bytes = 0;    // their sizes
  std::uint64_t missing = 0;  // wal-fetch: not in the archive
  std::map<std::string, std::uint64_t> failures;  // by kind_name
};
// Adds one call's outcome to the tool's counters of `config`'s repository. Never throws; a failure to
// record is a debug log line. `failure` set: a failed call; else `bytes` handed over (or, with
// `missing`, a file not in the archive).
struct WalOutcome {
  std::optional<ErrorKind> failure;
  bool missing = false;
  std::uint64_t bytes = 0;
};
void record_wal_outcome(const Config& config, WalTool tool, const WalOutcome& outcome) noexcept;
// How long record_wal_outcome waits for another process's lock on the counters before it gives up and
// loses this one count (default 100 ms: the record never delays a call noticeably). Returns the previous
// value. For tests that count exactly under contention on a loaded machine.
std::chrono::milliseconds set_wal_counters_lock_patience(std::chrono::milliseconds patience);
// nullopt when no call was recorded yet (or the file is damaged: a warning).
std::optional<WalCounters> read_wal_counters(const Config& config, WalTool tool);

// What wal-push and wal-fetch main() run: `call` (returns true when `file` was handed over: archived from
// it, or fetched to it; false: wal-fetch's "not in the archive"), then records the outcome for every
// repository of `config` (repository_configs) and returns `call`'s result or rethrows its error. A
// wal-push whose file a repository with required = false now owes (owed.h) is not counted as archived
// there. `file` is stat()ed for the bytes.
bool recorded_wal_call(const Config& config, WalTool tool, const std::string& file, const std::function<bool()>& call);

}  // namespace pgvault
