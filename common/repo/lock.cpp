#include "common/repo/lock.h"

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <ctime>

#include "common/base/errors.h"
#include "common/base/format.h"
#include "common/base/threads.h"
#include "common/crypto/crypto.h"
#include "common/repo/layout.h"
#include "common/repo/repo_json.h"

namespace pgvault {
namespace {

using nlohmann::json;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}


std::string record_text(const std::string& tool, std::int64_t now, const std::string& token) {
  json record = {{"tool", tool}, {"host", host_name()}, {"pid", static_cast<std::int64_t>(::getpid())},
                 {"time", now}, {"time_iso", format_utc(now)}, {"token", token}};
  return record.dump(2) + "\n";
}

std::optional<LockHolder> parse_holder(const Bytes& data) {
  try {
    json j = json::parse(data.begin(), data.end());
    LockHolder h;
    h.tool = j.value("tool", "");
    h.host = j.value("host", "");
    // A pid or time that is not an integer (a float, a string, 1e300) makes the record unreadable:
    // the lock's age then comes from the object's mtime, never from a value get<>() truncated or wrapped.
    for (auto [key, field] : {std::pair{"pid", &h.pid}, std::pair{"time", &h.time}}) {
      if (!j.contains(key)) continue;
      std::optional<std::int64_t> n = repo_json::integer_in_range<std::int64_t>(j.at(key));
      if (!n) return std::nullopt;
      *field = *n;
    }
    h.token = j.value("token", "");
    return h;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// The holder recorded in `key`, nullopt when the object does not exist. `unparsable` is set when it
// exists but is not a lock record (then the holder carries only the storage mtime).
std::optional<LockHolder> read_holder(Storage& storage, const std::string& key, bool& unparsable) {
  unparsable = false;
  Bytes data;
  try {
    data = read_all(storage, key);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound) return std::nullopt;
    throw;
  }
  if (auto h = parse_holder(data)) return h;
  unparsable = true;
  LockHolder h;
  if (auto info = storage.head(key)) h.time = info->mtime;
  return h;
}

bool dead_here(const LockHolder& h, const std::string& me) {
  if (h.host != me || h.pid <= 0) return false;
  if (h.pid == static_cast<std::int64_t>(::getpid())) return false;  // ourselves: not dead
  return ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

std::string describe_holder(const LockHolder& h) {
  return (h.tool.empty() ? std::string("a process") : h.tool) + " on host " + (h.host.empty() ? "?" : h.host) +
         " pid " + std::to_string(h.pid) + " since " + format_utc(h.time);
}

RepositoryLock RepositoryLock::acquire(Storage& storage, const std::string& name, const LockOptions& opts) {
  const std::string key = keys::lock(name);
  const std::string me = host_name();
  Bytes rnd(16);
  random_bytes(rnd);
  const std::string token = to_hex(rnd);
  const std::string text = record_text(opts.tool, opts.now, token);

  std::optional<LockHolder> taken_over;
  auto create_check = opts.check_create_later ? std::make_shared<DeferredConfirms>() : nullptr;
  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      write_all(storage, key, as_bytes(text),
                PutOptions{.if_absent = true, .size = text.size(), .confirm_later = create_check.get()});
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Duplicate) throw;
      bool unparsable = false;
      auto holder = read_holder(storage, key, unparsable);
      if (!holder) continue;  // released meanwhile: try again
      std::int64_t age = opts.now - holder->time;
      bool stale = age >= opts.stale_after || (!unparsable && dead_here(*holder, me));
      std::string who = unparsable ? "an unreadable lock record" : describe_holder(*holder);
      if (!stale) {
        throw Error(ErrorKind::Conflict,
                    "repository " + storage.describe() + " is locked by " + who + " (object " + key +
                        "); another " + (opts.tool.empty() ? "process" : opts.tool) +
                        " is running. If it is not, the lock is taken over once older than " +
                        std::to_string(opts.stale_after) + "s, or delete " + key);
      }
      spdlog::warn("taking over stale lock {} held by {}", key, who);
      taken_over = *holder;
      storage.remove(key);
      continue;
    }
    // Read back: on a store without conditional writes, a concurrent takeover may have replaced ours.
    bool unparsable = false;
    auto holder = read_holder(storage, key, unparsable);
    if (!holder || unparsable || holder->token != token) {
      throw Error(ErrorKind::Conflict, "repository " + storage.describe() + " lock " + key +
                                           " was taken by " + (holder ? describe_holder(*holder) : "another process") +
                                           " at the same moment; run again later");
    }
    RepositoryLock lock(&storage, key, token, opts.tool, opts.now);
    lock.taken_over_ = taken_over;
    lock.create_check_ = create_check;
    return lock;
  }
  throw Error(ErrorKind::Conflict, "repository " + storage.describe() + " lock " + key +
                                       " changes hands too fast; run again later");
}

struct RepositoryLock::Heartbeat {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::string lost;  // why the lock was lost (under mu); empty while it is held
  ThreadGroup thread;
};

RepositoryLock::RepositoryLock(Storage* storage, std::string key, std::string token, std::string record_tool,
                               std::int64_t now)
    : storage_(storage), key_(std::move(key)), token_(std::move(token)), tool_(std::move(record_tool)),
      acquired_at_(now) {}

RepositoryLock::RepositoryLock(RepositoryLock&& other) noexcept
    : storage_(other.storage_), key_(std::move(other.key_)), token_(std::move(other.token_)),
      tool_(std::move(other.tool_)), acquired_at_(other.acquired_at_), taken_over_(std::move(other.taken_over_)),
      create_check_(std::move(other.create_check_)), heartbeat_(std::move(other.heartbeat_)) {
  other.storage_ = nullptr;
}

void RepositoryLock::verify_ours() const {
  bool unparsable = false;
  auto holder = read_holder(*storage_, key_, unparsable);
  if (!holder || unparsable || holder->token != token_) {
    throw Error(ErrorKind::Conflict, "lock " + key_ + " is no longer ours (now " +
                                         (!holder ? std::string("deleted")
                                                  : unparsable ? std::string("an unreadable record")
                                                               : "held by " + describe_holder(*holder)) +
                                         ")");
  }
}

// Before the record is read or rewritten: a refresh changes the object, and with it what the check
// compares (the ETag of the put in acquire()).
// Our object gone when the check looks (another run that also believed it won the create removed the
// key at its release or takeover) is a lock that is not ours: verify_ours() says so as a Conflict. A
// Transient error with the object still ours stands.
void RepositoryLock::run_create_check() const {
  if (!create_check_) return;
  try {
    create_check_->run();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Transient) throw;
    verify_ours();
    throw;
  }
}

void RepositoryLock::refresh(std::int64_t now) {
  if (!storage_) throw Error(ErrorKind::Internal, "refresh of a released lock " + key_);
  run_create_check();
  verify_ours();
  const std::string text = record_text(tool_, now, token_);
  write_all(*storage_, key_, as_bytes(text), PutOptions{.if_absent = false, .size = text.size()});
}

void RepositoryLock::keep_fresh(std::chrono::milliseconds every) {
  if (!storage_ || heartbeat_) return;
  heartbeat_ = std::make_unique<Heartbeat>();
  Heartbeat* hb = heartbeat_.get();  // on the heap: stays put when the lock is moved
  const auto start = std::chrono::steady_clock::now();
  auto beat = [this_storage = storage_, key = key_, token = token_, tool = tool_, at = acquired_at_, hb, start,
               every, create_check = create_check_] {
    // A lock object of its own, refreshed in place; it never releases (storage_ is cleared below).
    RepositoryLock self(this_storage, key, token, tool, at);
    self.create_check_ = create_check;
    std::unique_lock lk(hb->mu);
    while (!hb->cv.wait_for(lk, every, [hb] { return hb->stop; })) {
      auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
      try {
        self.refresh(at + elapsed.count());
      } catch (const std::exception& e) {
        spdlog::warn("could not refresh lock {}: {}", key, e.what());
        hb->lost = e.what();
        break;  // lost: the holder stops at its next check()
      }
    }
    self.storage_ = nullptr;
  };
  try {
    hb->thread.start(beat);
  } catch (const Error&) {
    heartbeat_.reset();
    throw;
  }
}

void RepositoryLock::check() const {
  if (!storage_) throw Error(ErrorKind::Conflict, "lock " + key_ + " is not held (released)");
  if (heartbeat_) {
    std::lock_guard lk(heartbeat_->mu);
    if (!heartbeat_->lost.empty()) throw Error(ErrorKind::Conflict, "lock " + key_ + " was lost: " + heartbeat_->lost);
  }
  run_create_check();
  verify_ours();
}

void RepositoryLock::stop_heartbeat() {
  if (!heartbeat_) return;
  {
    std::lock_guard lk(heartbeat_->mu);
    heartbeat_->stop = true;
  }
  heartbeat_->cv.notify_all();
  heartbeat_->thread.join();
  heartbeat_.reset();
}

RepositoryLock::~RepositoryLock() {
  stop_heartbeat();
  if (!storage_) return;
  try {
    release();
  } catch (const std::exception& e) {
    spdlog::warn("could not release lock {}: {}", key_, e.what());
  }
}

void RepositoryLock::release() {
  stop_heartbeat();
  if (!storage_) return;
  Storage* s = storage_;
  storage_ = nullptr;
  bool unparsable = false;
  auto holder = read_holder(*s, key_, unparsable);
  if (!holder) return;
  if (unparsable || holder->token != token_) {
    spdlog::warn("lock {} is now held by {}; not releasing it", key_,
                 unparsable ? std::string("an unreadable record") : describe_holder(*holder));
    return;
  }
  s->remove(key_);
}

}  // namespace pgvault
