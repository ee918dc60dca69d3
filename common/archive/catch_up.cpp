// catch_up (multi_push.h): pushes what lagging repositories are owed, each file read back from a
// repository that holds it.
#include <dirent.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "common/archive/multi_push.h"
#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/base/threads.h"
#include "common/repo/owed.h"

namespace pgvault {

namespace {

const std::string kScratchPrefix = std::string(kTempPrefix) + "catch-up.";

struct Job {
  std::size_t target;
  std::string name;
};

// A folder of its own for one file's copy, inside the queue's folder (the queue skips it):
// "<prefix>catch-up.<pid>.<n>", removed when done; a killed run's is removed by the next one.
class Scratch {
 public:
  explicit Scratch(const std::string& queue_dir) {
    static std::atomic<unsigned> counter{0};
    dir_ = queue_dir + "/" + kScratchPrefix + std::to_string(::getpid()) + "." + std::to_string(counter++);
    make_dirs(dir_, 0700);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// Removes the scratch folders of catch-up runs whose process is gone (killed).
void remove_stale_scratch(const std::string& queue_dir) {
  DIR* d = ::opendir(queue_dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind(kScratchPrefix, 0) != 0) continue;
    long pid = std::atol(n.c_str() + kScratchPrefix.size());
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(queue_dir + "/" + n);
  }
  ::closedir(d);
  for (const auto& s : stale) {
    std::error_code ec;
    std::filesystem::remove_all(s, ec);
  }
}

// Fetches `name` (verified, as wal-fetch does) into `dest` from the first other target that holds it;
// returns that target's name, or "" when none does.
std::string fetch_from_others(const std::vector<PushTarget>& targets, std::size_t lagging,
                              const std::set<std::string>& skip, const std::string& name, const std::string& dest) {
  for (std::size_t j = 0; j < targets.size(); ++j) {
    if (j == lagging || skip.count(targets[j].name())) continue;
    try {
      Repository src(targets[j].open(), targets[j].config);
      if (fetch_wal(src, name, dest) == FetchOutcome::Fetched) return targets[j].name();
    } catch (const Error& e) {
      spdlog::debug("catch-up: {} not read from repository {}: {}", name, targets[j].name(), e.what());
    }
  }
  return "";
}

// Pushes one owed file. False when no other repository holds it (it stays owed); throws when the
// lagging repository fails.
bool catch_up_one(const std::vector<PushTarget>& targets, const std::set<std::string>& skip, const Job& job) {
  const PushTarget& t = targets[job.target];
  OwedQueue queue(t.config);
  Scratch scratch(queue.dir());
  const std::string copy = scratch.dir() + "/" + job.name;
  const std::string from = fetch_from_others(targets, job.target, skip, job.name, copy);
  if (from.empty()) {
    spdlog::warn("repository {} is owed {} but no other repository could serve it; it stays owed", t.name(), job.name);
    return false;
  }
  Repository repo(t.open(), t.config);
  repo.require_initialised();
  try {
    push_wal(repo, copy);
  } catch (const Error& e) {
    throw Error(e.kind(), "repository " + t.name() + ": " + e.what());
  }
  queue.remove(job.name);
  spdlog::info("{} (owed) pushed into repository {} from repository {}", job.name, t.name(), from);
  return true;
}

std::vector<Job> owed_jobs(const std::vector<PushTarget>& targets, const std::set<std::string>& skip,
                           const std::string& only) {
  std::vector<Job> jobs;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (skip.count(targets[i].name()) || (!only.empty() && targets[i].name() != only)) continue;
    try {
      OwedQueue queue(targets[i].config);
      remove_stale_scratch(queue.dir());
      for (const auto& e : queue.list()) jobs.push_back({i, e.name});
    } catch (const Error& e) {
      spdlog::warn("repository {}: owed queue unreadable: {}", targets[i].name(), e.what());
    }
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.name < b.name; });
  return jobs;
}

// `skip` and the bounded targets backing off now.
std::set<std::string> with_backing_off(const std::vector<PushTarget>& targets, std::set<std::string> skip) {
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  for (const auto& t : targets) {
    if (backing_off(t, now)) skip.insert(t.name());
  }
  return skip;
}

// After a complete drain: the calls may push into the drained repositories again at once.
void forget_back_off(const std::vector<PushTarget>& targets, const std::string& only) {
  for (const auto& t : targets) {
    if (!only.empty() && t.name() != only) continue;
    try {
      OwedQueue(t.config).clear_retry_after();
    } catch (const Error& e) {
      spdlog::warn("repository {}: {}", t.name(), e.what());
    }
  }
}

}  // namespace

CatchUpResult catch_up(const std::vector<PushTarget>& targets, const std::set<std::string>& skip_given, int parallel,
                       std::optional<std::chrono::steady_clock::time_point> deadline, const std::string& only) {
  const std::set<std::string> skip = with_backing_off(targets, skip_given);
  const std::vector<Job> jobs = owed_jobs(targets, skip, only);
  if (jobs.empty()) return {};
  std::atomic<std::size_t> next{0}, pushed{0};
  std::mutex mu;
  std::set<std::size_t> failing;  // targets that failed in this run: no more attempts there
  std::optional<Error> refused;
  auto work = [&] {
    for (std::size_t k; (k = next++) < jobs.size();) {
      if (deadline && std::chrono::steady_clock::now() > *deadline) break;
      {
        std::lock_guard g(mu);
        if (failing.count(jobs[k].target)) continue;
      }
      try {
        if (catch_up_one(targets, skip, jobs[k])) ++pushed;
      } catch (const std::exception& e) {
        spdlog::warn("catch-up of {} stopped: {}", jobs[k].name, e.what());
        std::lock_guard g(mu);
        failing.insert(jobs[k].target);
        const auto* err = dynamic_cast<const Error*>(&e);
        if (err && !refused && !may_owe(err->kind())) refused = *err;
      }
    }
  };
  {
    ThreadGroup workers;
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(std::max(parallel, 1)), jobs.size());
    try {
      workers.start_n(n - 1, work);
    } catch (const Error& e) {
      spdlog::debug("catch-up with fewer workers: {}", e.what());
    }
    work();
  }
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  for (std::size_t i : failing) back_off(targets[i], now);
  return {pushed.load(), jobs.size() - pushed.load(), refused};
}

void catch_up_command(const Config& config, const std::string& only) {
  if (!only.empty()) select_repository(config, only);  // an unknown name is a configuration error
  const std::vector<PushTarget> targets = push_targets(config, Patience::Full);
  for (;;) {
    CatchUpResult r = catch_up(targets, {}, config.push.parallel, std::nullopt, only);
    if (r.owed == 0) break;
    if (r.refused) throw *r.refused;  // the data is wrong somewhere: never retried as if transient
    if (r.pushed == 0) {
      std::string what;
      for (const auto& t : targets) {
        OwedStatus s = owed_status(t.config);
        if (s.segments > 0 && (only.empty() || only == t.name())) {
          what += (what.empty() ? "" : ", ") + s.repository + ": " + std::to_string(s.segments);
        }
      }
      if (what.empty()) break;  // another process finished them
      throw Error(ErrorKind::Transient, "WAL files still owed after catch-up (" + what + "); see the warnings above");
    }
  }
  forget_back_off(targets, only);
  spdlog::info("catch-up done: nothing owed{}", only.empty() ? "" : " to repository " + only);
}

}  // namespace pgvault
