// archive_command (archive.h): the called file, served from a look-ahead record or pushed, beside
// look-ahead pushes of the files PostgreSQL will ask for next, or followed by the detached push worker.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/archive/archive.h"
#include "common/archive/multi_push.h"
#include "common/archive/push_worker.h"
#include "common/archive/spool.h"
#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/base/threads.h"

namespace pgvault {

namespace {

// The push spool when look-ahead is on and its folder usable; "" otherwise. `describe` names the
// repository, or all of them (push_spool_dir).
std::string push_spool(const Config& config, const std::vector<std::string>& describe) {
  if (config.push.parallel <= 1) return "";
  try {
    return push_spool_dir(config.push.spool, describe);
  } catch (const Error& e) {
    spdlog::warn("look-ahead disabled: {}", e.what());
    return "";
  }
}

// True when an earlier call's look-ahead made `path` durable and the file is still the one it pushed.
bool pushed_ahead(const std::string& spool, const std::string& path) {
  try {
    return take_push_record(spool, base_name(path), file_identity(path));
  } catch (const Error&) {
    return false;  // no usable record: push normally (which reports a missing file properly)
  }
}

// Files a call pushes ahead, at most this many per thread of [push] parallel, and no new one started
// later than kAheadBudget after the called file is durable (files being pushed finish): a backlog
// drains in long runs of one process whose threads never wait for each other, while a call still
// returns soon after its own file is safe.
constexpr std::size_t kAheadPerThread = 4;
constexpr auto kAheadBudget = std::chrono::seconds(2);

// The look-ahead files, handed one at a time to whichever thread is free: a thread that finishes a
// file takes the next at once, so nothing waits for a batch to end.
class AheadQueue {
 public:
  explicit AheadQueue(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  // The next file, or nullopt when none is left or starts have stopped.
  std::optional<std::string> take() {
    std::lock_guard lock(mu_);
    if (next_ >= paths_.size() || (deadline_ && std::chrono::steady_clock::now() >= *deadline_)) return std::nullopt;
    return paths_[next_++];
  }
  // No file starts after `deadline` (the earliest one given wins).
  void stop_at(std::chrono::steady_clock::time_point deadline) {
    std::lock_guard lock(mu_);
    if (!deadline_ || deadline < *deadline_) deadline_ = deadline;
  }
  std::size_t size() const { return paths_.size(); }

 private:
  std::mutex mu_;
  const std::vector<std::string> paths_;
  std::size_t next_ = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
};

// Takes files from `queue` until it is empty or stopped.
// Between files the thread hands its freed memory back (glibc keeps a per-thread arena otherwise, and
// a thread that pushes several files would grow the call's peak RSS).
void drain_ahead(AheadQueue& queue, const PushFn& push, const std::string& spool) {
  while (auto p = queue.take()) {
    push_ahead_one(push, spool, *p);
    release_freed_memory();
  }
}

// The files ready after `path` that this call pushes ahead.
AheadQueue ahead_of(const Config& config, const std::string& path) {
  const std::string wal_dir = parent_dir(path);
  const auto threads = static_cast<std::size_t>(config.push.parallel);
  std::vector<std::string> paths;
  for (const std::string& next : next_ready(wal_dir, base_name(path), kAheadPerThread * threads)) {
    paths.push_back(wal_dir + "/" + next);
  }
  return AheadQueue(std::move(paths));
}

// Up to [push] parallel - 1 threads (no more than there are files) taking files from `queue`, started
// into `workers` to run beside the caller's own push. Not a TaskGroup: its run() blocks the caller,
// whose push must overlap these, and a thread that cannot be started must only end the look-ahead,
// never fail the call.
void start_look_ahead(ThreadGroup& workers, const Config& config, const PusherFactory& pusher, AheadQueue& queue,
                      const std::string& spool) {
  const auto n = std::min(static_cast<std::size_t>(config.push.parallel - 1), queue.size());
  for (std::size_t i = 0; i < n; ++i) {
    try {
      workers.start([&pusher, &queue, &spool] {
        try {
          drain_ahead(queue, pusher(), spool);
        } catch (const std::exception& e) {
          spdlog::debug("look-ahead thread stopped: {}", e.what());  // its files are pushed by their own calls
        }
      });
    } catch (const Error& e) {
      spdlog::warn("look-ahead stopped: {}", e.what());  // optional work: the called segment is pushed anyway
      break;
    }
  }
}

// Ends the look-ahead's new starts on every way out of the caller's scope (declared after the
// ThreadGroup, so it runs before the join): a failed call does not wait for the whole queue.
struct StopAhead {
  AheadQueue& queue;
  ~StopAhead() { queue.stop_at(std::chrono::steady_clock::now()); }
};

// After the called file is durable: the caller's thread helps with the look-ahead for a bounded time.
void help_ahead(AheadQueue& queue, const PushFn& push, const std::string& spool) {
  queue.stop_at(std::chrono::steady_clock::now() + kAheadBudget);
  drain_ahead(queue, push, spool);
}

// Started catch-up work ends within about this long after the called file is durable (a file already
// being pushed finishes), so archiving never waits long behind a lagging repository.
constexpr auto kCatchUpBudget = std::chrono::seconds(3);

// Several repositories (multi_push.h): the called file into all of them beside the look-ahead, then
// a bounded catch-up of what lagging repositories are owed (not into one whose push just failed).
PushOutcome archive_everywhere(const Config& config, const std::string& path) {
  const std::vector<PushTarget> targets = push_targets(config);
  std::vector<std::string> describe;
  for (const auto& t : targets) describe.push_back(t.name() + "=" + t.open()->describe());
  const std::string spool = push_spool(config, describe);
  PushOutcome outcome = PushOutcome::AlreadyStored;
  std::set<std::string> failed;
  if (!spool.empty() && pushed_ahead(spool, path)) {
    spdlog::debug("{} was archived ahead by an earlier call", base_name(path));
  } else {
    const PushFn push = [&targets](const std::string& p) { return push_everywhere(targets, p); };
    const PusherFactory pusher = [&push] { return push; };
    AheadQueue queue = spool.empty() ? AheadQueue({}) : ahead_of(config, path);
    ThreadGroup workers;  // joined on every way out
    StopAhead stop{queue};
    start_look_ahead(workers, config, pusher, queue, spool);
    outcome = push_everywhere(targets, path, &failed).outcome;
    help_ahead(queue, push, spool);
  }
  catch_up(targets, failed, config.push.parallel, std::chrono::steady_clock::now() + kCatchUpBudget);
  if (!spool.empty()) prune_spool_when_due(spool, 24 * 3600);
  return outcome;
}

// True when one of the next .ready files after `path` (as many as a worker starts at once, twice) has
// no record yet: then a worker has work (no process is started for a backlog it already pushed).
bool backlog_unrecorded(const Config& config, const std::string& path, const std::string& spool) {
  const auto look = 2 * static_cast<std::size_t>(config.push.parallel);
  for (const std::string& next : next_ready(parent_dir(path), base_name(path), look)) {
    if (!path_exists(spool + "/" + next + ".done")) return true;
  }
  return false;
}

// True when a push worker serves `spool`: one was running, or `spawn_worker` started one.
bool worker_serving(const std::string& spool, const std::function<bool()>& spawn_worker) {
  if (!SpoolLock(spool, kPushLockFile).held()) return true;
  return spawn_worker();
}

// The in-call look-ahead once `path` is durable (no push worker could be started).
void look_ahead_after(const Config& config, Repository& repo, const std::string& path, const std::string& spool) {
  const PusherFactory pusher = single_repository_pusher(config);
  AheadQueue queue = ahead_of(config, path);
  ThreadGroup workers;  // joined on every way out
  StopAhead stop{queue};
  start_look_ahead(workers, config, pusher, queue, spool);
  help_ahead(queue, [&repo](const std::string& p) { return push_wal(repo, p); }, spool);
}

// One repository with a push worker: the called file (under its claim, or from the worker's record),
// then a worker for the .ready files after it.
PushOutcome archive_detached(const Config& config, Repository& repo, const std::string& path, const std::string& spool,
                             const std::function<bool()>& spawn_worker) {
  PushOutcome outcome = PushOutcome::AlreadyStored;
  {
    const std::unique_ptr<PushClaim> claim = claim_when_free(spool, base_name(path), kClaimPatience);
    if (pushed_ahead(spool, path)) {
      spdlog::debug("{} was archived ahead by an earlier call", base_name(path));  // its push worker
    } else {
      repo.require_initialised();  // never create a repository (an unmounted directory, a mistyped bucket)
      repo.set_auto_threads(std::min(2, static_cast<int>(std::thread::hardware_concurrency())));
      outcome = push_wal(repo, path).outcome;
      repo.set_auto_threads(0);
    }
  }
  if (backlog_unrecorded(config, path, spool) && !worker_serving(spool, spawn_worker)) {
    spdlog::debug("no push worker could be started: looking ahead in this call");
    look_ahead_after(config, repo, path, spool);
  }
  prune_spool_when_due(spool, 24 * 3600);
  return outcome;
}

}  // namespace

PushOutcome archive_command(const Config& config, const std::string& path, const std::function<bool()>& spawn_worker) {
  if (config.repositories.size() > 1) return archive_everywhere(config, path);
  Repository repo(open_storage(config), config);
  // The first call makes the spool only for a repository that exists: a mistyped location or an
  // unmounted directory fails the call (as below) without leaving a folder behind.
  if (config.push.parallel > 1 && !path_exists(push_spool_dir(config.push.spool, {repo.describe()}, false))) {
    repo.require_initialised();
  }
  const std::string spool = push_spool(config, {repo.describe()});
  if (!spool.empty() && spawn_worker) return archive_detached(config, repo, path, spool, spawn_worker);
  if (!spool.empty() && pushed_ahead(spool, path)) {
    spdlog::debug("{} was archived ahead by an earlier call", base_name(path));
    return PushOutcome::AlreadyStored;
  }
  repo.require_initialised();  // never create a repository (an unmounted directory, a mistyped bucket)
  const PusherFactory pusher = single_repository_pusher(config);
  AheadQueue queue = spool.empty() ? AheadQueue({}) : ahead_of(config, path);
  ThreadGroup workers;  // joined on every way out
  StopAhead stop{queue};
  start_look_ahead(workers, config, pusher, queue, spool);
  // Alone, the segment is compressed by two zstd workers (about twice as fast on two cores); beside
  // look-ahead pushes the cores are already busy, so each compresses in its own thread.
  if (workers.empty()) repo.set_auto_threads(std::min(2, static_cast<int>(std::thread::hardware_concurrency())));
  PushOutcome outcome = push_wal(repo, path).outcome;
  repo.set_auto_threads(0);
  help_ahead(queue, [&repo](const std::string& p) { return push_wal(repo, p); }, spool);
  if (!spool.empty()) prune_spool_when_due(spool, 24 * 3600);
  return outcome;
}

}  // namespace pgvault
