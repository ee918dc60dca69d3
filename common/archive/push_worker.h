// What wal-push's two ways of pushing ahead share (archive.h: archive_command and push_worker): the
// .ready files PostgreSQL will ask for next, and one file pushed and recorded.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/archive/archive.h"
#include "common/archive/spool.h"

namespace pgvault {

// The push worker stops when no new .ready file appeared for this long, after this many files, or after
// this long in all (the next call that finds .ready files waiting starts a fresh one: a worker of an
// older binary or configuration never serves for long).
inline constexpr auto kPushWorkerIdle = std::chrono::milliseconds(1000);
inline constexpr std::size_t kPushWorkerMaxFiles = 4096;
inline constexpr auto kPushWorkerMaxTime = std::chrono::minutes(10);
// Files the push worker keeps in flight per encoding one ([push] parallel) on a store whose create is
// not one atomic step (S3: the commit is an upload, and on a store without conditional writes a HEAD,
// the upload, a settle wait and a HEAD).
inline constexpr std::size_t kPushInFlightPerEncoder = 4;

// The .ready files of `wal_dir`/archive_status other than `current`, in the order PostgreSQL archives
// them (history files first, then by name), at most `max`.
std::vector<std::string> next_ready(const std::string& wal_dir, const std::string& current, std::size_t max);

// The claim (spool.h: PushClaim) on `name` for its own call: waits while another live process (the
// push worker) holds it, at most `patience`, then throws Transient (PostgreSQL retries the file later:
// a call never pushes a file beside a live worker pushing it). Not ours when the spool cannot hold
// claims: the call pushes anyway (a worker cannot claim there either).
inline constexpr auto kClaimPatience = std::chrono::minutes(2);
std::unique_ptr<PushClaim> claim_when_free(const std::string& spool, const std::string& name,
                                           std::chrono::milliseconds patience);

// A push of one file, made by one thread.
using PushFn = std::function<PushResult(const std::string& path)>;
// Makes the push a thread uses for every file it takes (a repository opened once per thread: S3
// storages of one process share their connections and what the store supports).
using PusherFactory = std::function<PushFn()>;
// The pusher into the one configured repository; its objects encode under `slots` when given
// (Repository::set_encode_slots).
PusherFactory single_repository_pusher(const Config& config, EncodeSlots* slots = nullptr);

// Pushes `path` and writes its record once durable, only when the file is still the one it was before
// the push (same identity: a file PostgreSQL rewrote or recycled meanwhile gets no record). A failure
// is only logged (not recorded: PostgreSQL's own call for this file pushes it and reports the error).
void push_ahead_one(const PushFn& push, const std::string& spool, const std::string& path);

// The worker's queue: the .ready files of `wal_dir` not yet seen, each handed out claimed (PushClaim)
// to one thread; a file already recorded or claimed by a call is passed over. Thread-safe.
class PushBacklog {
 public:
  PushBacklog(std::string wal_dir, std::string spool, const std::string& skip, std::size_t scan_batch);
  ~PushBacklog();
  PushBacklog(const PushBacklog&) = delete;
  PushBacklog& operator=(const PushBacklog&) = delete;
  // The next file to push (its claim held until done(path)); nullopt when the worker must stop (idle,
  // or a bound reached).
  std::optional<std::string> take();
  // Releases the claim of a file take() returned.
  void done(const std::string& path);
  std::size_t taken() const;

 private:
  struct State;
  std::optional<std::string> take_queued(State& s);
  void scan(State& s);
  std::unique_ptr<State> state_;
};

}  // namespace pgvault
