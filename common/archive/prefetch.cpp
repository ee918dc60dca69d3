// prefetch_worker (archive.h): the detached process that fetches the next segments into the spool, from
// the configured repositories in order.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/archive/archive.h"
#include "common/archive/spool.h"
#include "common/archive/wal_checks.h"
#include "common/base/errors.h"
#include "common/base/task_group.h"

namespace pgvault {

namespace {

constexpr int kPrefetchThreads = 4;

// The configured repositories (open_fetch_repositories), owned, and as fetch_wal_any takes them.
struct Repositories {
  std::vector<std::unique_ptr<Repository>> opened;
  std::vector<Repository*> repos;
  void open(const Config& config) {
    opened = open_fetch_repositories(config, FetchPatience::FallThroughFast);  // the call itself waits out an outage
    for (const auto& r : opened) repos.push_back(r.get());
  }
};

// Logs a failed prefetch. A failure to write the spool (Io: a full disk, a quota) warns once; until a
// worker gets through its batch without one (kPrefetchWarnedFile removed) the same failure is logged at
// debug level only.
void log_prefetch_failure(const std::string& spool, const std::string& name, const Error& e) {
  if (e.kind() == ErrorKind::Io) {
    // Creating the marker decides, atomically across threads and calls, who warns.
    int fd = ::open((spool + "/" + kPrefetchWarnedFile).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    if (fd < 0 && errno == EEXIST) {
      spdlog::debug("prefetch of {} stopped: {}", name, e.what());
      return;
    }
  }
  spdlog::warn("prefetch of {} stopped: {}", name, e.what());
}

// One batch of the worker: segments to fetch into the spool, several at once (storage latency
// overlaps), taken in order so the next one needed comes first.
class PrefetchBatch {
 public:
  PrefetchBatch(const Config& config, std::string spool, SpoolOwner owner, std::optional<std::uint64_t> control_sysid)
      : config_(config), spool_(std::move(spool)), owner_(std::move(owner)), control_sysid_(control_sysid) {}

  // The `count` segments after `wal` not already spooled, each marked .inflight.
  void plan(const WalFileName& wal, int count) {
    const std::uint32_t seg_size = owner_.segment_size;
    const std::uint64_t segno = segment_number(wal.log, wal.seg, seg_size);
    for (int i = 1; i <= count; ++i) {
      std::string next = segment_file_name(wal.timeline, segno + static_cast<std::uint64_t>(i), seg_size);
      const std::string data = spool_ + "/" + next;
      if (path_exists(data + ".ready")) continue;
      int fd = ::open((data + ".inflight").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) ::close(fd);
      todo_.push_back(next);
    }
  }

  // Up to kPrefetchThreads workers, each with its own storage connection; the first failure, a missing
  // segment or prefetch.stop ends the batch after the segments being fetched.
  void run() {
    TaskGroup group(kPrefetchThreads);
    const std::size_t threads = std::min<std::size_t>(todo_.size(), kPrefetchThreads);
    try {
      group.run_workers(threads, [&] { work(group); });
    } catch (const Error& e) {
      spdlog::warn("prefetch stopped: {}", e.what());  // a worker could not start; the others ended
    }
  }

  // Removes the marks; clears the warning marker after a batch without a spool failure; empties the
  // spool when recovery ended meanwhile.
  void finish() {
    for (const auto& n : todo_) ::unlink((spool_ + "/" + n + ".inflight").c_str());
    if (!spool_failed_) ::unlink((spool_ + "/" + kPrefetchWarnedFile).c_str());  // the spool has room again
    const std::string stop_file = spool_ + "/" + kPrefetchStopFile;
    if (path_exists(stop_file)) {  // recovery ended while this worker ran: leave nothing behind
      clear_spool(spool_, "");
      ::unlink(stop_file.c_str());
    }
  }

 private:
  void work(TaskGroup& group) {
    Repositories own;  // this thread's connections
    for (std::size_t i; !group.stop_requested() && (i = next_++) < todo_.size();) {
      const std::string data = spool_ + "/" + todo_[i];
      if (!fetch_one(own, todo_[i], data)) group.cancel();
      ::unlink((data + ".inflight").c_str());
    }
  }

  // False when the batch must stop (prefetch.stop, the end of the archive, a failure).
  bool fetch_one(Repositories& own, const std::string& name, const std::string& data) {
    try {
      if (path_exists(spool_ + "/" + kPrefetchStopFile)) return false;
      if (own.opened.empty()) own.open(config_);
      Digest d;
      if (fetch_wal_any(own.repos, name, data, control_sysid_, &d) == FetchOutcome::Missing) {
        return false;  // the end of the archive: nothing after it either
      }
      write_ready(data, owner_, d);
      return true;
    } catch (const Error& e) {
      ::unlink(data.c_str());
      if (e.kind() == ErrorKind::Io) spool_failed_ = true;
      log_prefetch_failure(spool_, name, e);
    } catch (const std::exception& e) {
      ::unlink(data.c_str());
      spdlog::warn("prefetch of {} stopped: {}", name, e.what());
    }
    return false;
  }

  const Config& config_;
  const std::string spool_;
  const SpoolOwner owner_;
  const std::optional<std::uint64_t> control_sysid_;
  std::vector<std::string> todo_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> spool_failed_{false};
};

}  // namespace

void prefetch_worker(const Config& config, const std::string& name) {
  auto wal = WalFileName::parse(name);
  if (!wal || wal->kind != WalFileKind::Segment || config.fetch.prefetch == 0) return;
  Repositories repos;
  std::optional<std::uint64_t> control_sysid;
  Identity id;
  try {
    repos.open(config);
    control_sysid = read_control_system_identifier(".");
    id = fetch_identity(repos.repos, control_sysid);
  } catch (const Error& e) {
    spdlog::debug("no prefetch: {}", e.what());  // the caller's own fetch reported it
    return;
  }
  const SpoolOwner owner{fetch_spool_owner(repos.repos), id.system_identifier, id.wal_segment_size};
  std::string spool = prefetch_spool_dir(config.fetch.spool, owner.repository, owner.system_identifier);
  {
    SpoolLock lock(spool);
    if (!lock.held()) return;  // another worker is at it
    PrefetchBatch batch(config, spool, owner, control_sysid);
    batch.plan(*wal, config.fetch.prefetch);
    batch.run();
    batch.finish();
  }
  tidy_after_stop(spool);  // a stop asked for after finish() looked
}

}  // namespace pgvault
