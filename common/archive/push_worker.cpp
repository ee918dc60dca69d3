// push_worker (archive.h): the detached process that pushes the .ready backlog ahead of PostgreSQL's
// archive_command calls, and what it shares with the in-call look-ahead (push_worker.h).
#include "common/archive/push_worker.h"

#include <dirent.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/archive/spool.h"
#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/base/threads.h"

namespace pgvault {

std::vector<std::string> next_ready(const std::string& wal_dir, const std::string& current, std::size_t max) {
  std::vector<std::string> history, rest;
  DIR* d = ::opendir((wal_dir + "/archive_status").c_str());
  if (!d) return {};
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() <= 6 || n.compare(n.size() - 6, 6, ".ready") != 0) continue;
    n.resize(n.size() - 6);
    auto w = WalFileName::parse(n);
    if (!w || n == current) continue;
    (w->kind == WalFileKind::History ? history : rest).push_back(n);
  }
  ::closedir(d);
  std::sort(history.begin(), history.end());
  std::sort(rest.begin(), rest.end());
  history.insert(history.end(), rest.begin(), rest.end());
  if (history.size() > max) history.resize(max);
  return history;
}

PusherFactory single_repository_pusher(const Config& config, EncodeSlots* slots) {
  return [&config, slots]() -> PushFn {
    auto own = std::make_shared<Repository>(open_storage(config), config);  // one per thread, for all its files
    own->set_encode_slots(slots);
    return [own](const std::string& p) { return push_wal(*own, p); };
  };
}

void push_ahead_one(const PushFn& push, const std::string& spool, const std::string& path) {
  const std::string name = base_name(path);
  try {
    const FileIdentity before = file_identity(path);
    PushResult r = push(path);
    if (file_identity(path) == before) {
      write_push_record(spool, name, before, r.digest);
    } else {
      spdlog::debug("{} changed while it was pushed ahead: not recorded", name);
    }
  } catch (const std::exception& e) {
    spdlog::debug("look-ahead push of {} failed: {}", name, e.what());
  }
}

std::unique_ptr<PushClaim> claim_when_free(const std::string& spool, const std::string& name,
                                           std::chrono::milliseconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    auto claim = std::make_unique<PushClaim>(spool, name);
    if (!claim->busy()) return claim;
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(ErrorKind::Transient, spool + "/" + name + ".inflight: the push worker has been pushing " + name +
                                            " for over " + std::to_string(patience.count() / 1000) +
                                            " s; not pushing it beside it (retried later)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// How often the worker looks at archive_status again when its queue is empty.
constexpr auto kScanInterval = std::chrono::milliseconds(50);

struct PushBacklog::State {
  std::mutex mu;
  std::string wal_dir, spool;
  std::size_t scan_batch = 0;
  std::deque<std::string> queue;
  std::set<std::string> seen;  // queued once: pushed, failed, recorded or claimed by a call
  std::map<std::string, std::unique_ptr<PushClaim>> claims;
  std::chrono::steady_clock::time_point start, last_found, last_scan;
  std::size_t taken = 0;
};

PushBacklog::PushBacklog(std::string wal_dir, std::string spool, const std::string& skip, std::size_t scan_batch)
    : state_(std::make_unique<State>()) {
  state_->wal_dir = std::move(wal_dir);
  state_->spool = std::move(spool);
  state_->scan_batch = std::max<std::size_t>(scan_batch, 1);
  state_->seen.insert(skip);
  state_->start = state_->last_found = std::chrono::steady_clock::now();
  state_->last_scan = state_->start - kScanInterval;
}

PushBacklog::~PushBacklog() = default;

std::optional<std::string> PushBacklog::take() {
  for (;;) {
    {
      std::lock_guard lock(state_->mu);
      State& s = *state_;
      const auto now = std::chrono::steady_clock::now();
      if (s.taken >= kPushWorkerMaxFiles || now - s.start >= kPushWorkerMaxTime) return std::nullopt;
      if (auto p = take_queued(s)) return p;
      if (now - s.last_scan >= kScanInterval) {
        scan(s);
        if (auto p = take_queued(s)) return p;
      }
      if (now - s.last_found >= kPushWorkerIdle) return std::nullopt;
    }
    std::this_thread::sleep_for(kScanInterval / 2);
  }
}

// The first queued file still waiting (its .ready there, no record) that this worker could claim.
std::optional<std::string> PushBacklog::take_queued(State& s) {
  while (!s.queue.empty()) {
    const std::string name = s.queue.front();
    s.queue.pop_front();
    auto claim = std::make_unique<PushClaim>(s.spool, name);
    if (!claim->ours()) continue;  // its own call is pushing it
    // Checked under the claim: a call that pushed it has released its claim before PostgreSQL
    // renamed .ready to .done, and no call pushes it while the claim is held.
    if (!path_exists(s.wal_dir + "/archive_status/" + name + ".ready") ||
        path_exists(s.spool + "/" + name + ".done")) {
      continue;
    }
    const std::string path = s.wal_dir + "/" + name;
    s.claims[path] = std::move(claim);
    ++s.taken;
    s.last_found = std::chrono::steady_clock::now();
    return path;
  }
  return std::nullopt;
}

// Queues the .ready files not seen yet, in archiving order. Among the first seen + scan_batch names
// at least scan_batch are unseen when that many exist, so the scan keeps a bounded list.
void PushBacklog::scan(State& s) {
  s.last_scan = std::chrono::steady_clock::now();
  for (std::string& n : next_ready(s.wal_dir, "", s.seen.size() + s.scan_batch)) {
    if (s.seen.insert(n).second) s.queue.push_back(std::move(n));
  }
}

void PushBacklog::done(const std::string& path) {
  std::lock_guard lock(state_->mu);
  state_->claims.erase(path);
}

std::size_t PushBacklog::taken() const {
  std::lock_guard lock(state_->mu);
  return state_->taken;
}

namespace {

// One worker thread: files from `backlog` until it says stop. Freed memory goes back between files
// (glibc keeps per-thread arenas otherwise, and the worker's peak RSS would grow).
void drain_backlog(PushBacklog& backlog, const PushFn& push, const std::string& spool) {
  while (auto p = backlog.take()) {
    push_ahead_one(push, spool, *p);
    backlog.done(*p);
    release_freed_memory();
  }
}

// The spool's push.lock, held for the worker's life; null when another worker holds it. A call that
// checked the lock holds it for an instant: retried for a moment.
std::unique_ptr<SpoolLock> worker_lock(const std::string& spool) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto lock = std::make_unique<SpoolLock>(spool, kPushLockFile);
    if (lock->held()) return lock;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return nullptr;
}

}  // namespace

void push_worker(const Config& config, const std::string& path) {
  if (config.repositories.size() > 1 || config.push.parallel <= 1) return;
  std::string spool;
  bool atomic_store = true;
  try {
    Repository repo(open_storage(config), config);
    spool = push_spool_dir(config.push.spool, {repo.describe()});
    atomic_store = repo.storage().atomic_create();
  } catch (const Error& e) {
    spdlog::debug("no push worker: {}", e.what());  // the call pushed its own file; later calls push theirs
    return;
  }
  const std::unique_ptr<SpoolLock> lock = worker_lock(spool);
  if (!lock) return;  // another worker is at it
  if (!atomic_store) {
    // More threads than encoders (below). Blocks of 256 KiB and more (a compressor's context, read
    // buffers) are then mapped and unmapped: one freed by a thread that then waits on its upload for a
    // second goes back at once, not when glibc's per-thread arena is trimmed (with 4x [push] parallel
    // threads that kept ~4 MiB each resident: the S3 worker's peak RSS went from 65 to 36 MiB on 20
    // real segments). And the threads share as many arenas as encode at once. Not on a local
    // repository: there each thread encodes, and remapping its compressor per file costs CPU.
    ::mallopt(M_MMAP_THRESHOLD, 256 << 10);
    ::mallopt(M_ARENA_MAX, std::max(config.push.parallel, 1));
  }
  lock->write_pid();
  // [push] parallel files encode at once. On an object store each file's commit then mostly waits (the
  // upload; without conditional writes the HEADs and the settle time, s3.h): more files are in flight.
  const auto encoders = static_cast<std::size_t>(config.push.parallel);
  const std::size_t threads = atomic_store ? encoders : kPushInFlightPerEncoder * encoders;
  EncodeSlots slots(static_cast<std::ptrdiff_t>(encoders));
  PushBacklog backlog(parent_dir(path), spool, base_name(path), 4 * threads);
  const PusherFactory pusher = single_repository_pusher(config, atomic_store ? nullptr : &slots);
  spdlog::debug("push worker: {} files in flight, {} encoding at once", threads, encoders);
  {
    ThreadGroup workers;  // joined before the lock is released
    for (std::size_t i = 0; i < threads; ++i) {
      try {
        workers.start([&] {
          try {
            drain_backlog(backlog, pusher(), spool);
          } catch (const std::exception& e) {
            spdlog::debug("push worker thread stopped: {}", e.what());  // its files are pushed by their calls
          }
        });
      } catch (const Error& e) {
        spdlog::warn("push worker: {}", e.what());
        break;
      }
    }
  }
  prune_spool_when_due(spool, 24 * 3600);
  spdlog::debug("push worker done: {} files pushed ahead", backlog.taken());
}

}  // namespace pgvault
