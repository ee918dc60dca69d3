// push_everywhere (multi_push.h): one WAL file into every configured repository at once, and the rule
// that decides the call's result from theirs.
#include <spdlog/spdlog.h>

#include <ctime>
#include <exception>

#include "common/archive/multi_push.h"
#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/base/threads.h"
#include "common/repo/owed.h"

namespace pgvault {

namespace {

std::string when_text(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&tt));
  return buf;
}

// What one repository's push came to. `skipped`: not tried (a bounded target owing or backing off).
struct TargetOutcome {
  std::optional<PushResult> result;
  std::optional<Error> error;
  bool skipped = false;
};

// Why a bounded target is not pushed into in this call (multi_push.h), or nullopt: push.
std::optional<Error> skip_reason(const PushTarget& t, std::int64_t now) {
  if (!t.bounded()) return std::nullopt;
  if (backing_off(t, now)) {
    return Error(ErrorKind::Transient, "repository " + t.name() + " is backing off after a failed push");
  }
  try {
    if (!OwedQueue(t.config).empty()) {
      return Error(ErrorKind::Transient, "repository " + t.name() + " owes earlier WAL files (the catch-up pushes them)");
    }
  } catch (const Error& e) {
    spdlog::warn("repository {}: {}", t.name(), e.what());
  }
  return std::nullopt;
}

// The error to report when no repository stored the file: the first that was tried.
const Error& first_failure(const std::vector<TargetOutcome>& outcomes) {
  for (const auto& o : outcomes) {
    if (!o.skipped) return *o.error;
  }
  return *outcomes[0].error;
}

TargetOutcome push_one(const PushTarget& t, const std::string& path) {
  TargetOutcome out;
  try {
    Repository repo(t.open(), t.config);
    repo.require_initialised();  // never create a repository (an unmounted directory, a mistyped bucket)
    out.result = push_wal(repo, path);
  } catch (const Error& e) {
    out.error = Error(e.kind(), "repository " + t.name() + ": " + e.what());
  } catch (const std::exception& e) {
    out.error = Error(ErrorKind::Internal, "repository " + t.name() + ": " + e.what());
  }
  return out;
}

// Records `name` as owed to `t` after `failure`, unless that passes one of its bounds (then throws,
// naming the repository and the bound).
void record_owed(const PushTarget& t, const std::string& name, const Error& failure, std::int64_t now) {
  const Config::Repository& r = t.config.repository;
  OwedQueue queue(t.config);
  std::vector<OwedEntry> entries = queue.list();
  bool listed = false;
  std::int64_t oldest = now;
  for (const auto& e : entries) {
    listed = listed || e.name == name;
    oldest = std::min(oldest, e.since);
  }
  const std::size_t count = entries.size() + (listed ? 0 : 1);
  if (count > static_cast<std::size_t>(r.max_owed_segments)) {
    throw Error(failure.kind(), "repository " + r.name + " would be owed " + std::to_string(count) +
                                    " WAL files, more than its bound max_owed_segments = " +
                                    std::to_string(r.max_owed_segments) + " (" + failure.what() + ")");
  }
  const std::int64_t max_age = parse_duration(r.max_owed_age, "repositories." + r.name + ".max_owed_age");
  if (now - oldest > max_age) {
    throw Error(failure.kind(), "repository " + r.name + " has owed WAL since " + when_text(oldest) +
                                    ", longer than its bound max_owed_age = " + r.max_owed_age + " (" +
                                    failure.what() + ")");
  }
  queue.add(name, now);
  spdlog::warn("{}; {} recorded as owed to repository {} ({} owed, since {})", failure.what(), name, r.name, count,
               when_text(oldest));
}

// The file was owed to `t` by an earlier call (a retry after a required repository failed) and is
// durable there now. Best effort: an entry left behind is pushed again later and found identical.
void forget_owed(const PushTarget& t, const std::string& name) {
  try {
    OwedQueue(t.config).remove(name);
  } catch (const Error& e) {
    spdlog::warn("repository {}: {}", t.name(), e.what());
  }
}

}  // namespace

bool may_owe(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Transient:
    case ErrorKind::Io:
    case ErrorKind::NotFound:
    case ErrorKind::Conflict:
    case ErrorKind::Interrupted:
    case ErrorKind::Internal:
      return true;
    default:
      return false;
  }
}

std::vector<PushTarget> push_targets(const Config& config, Patience patience) {
  std::vector<PushTarget> out;
  for (Config& c : repository_configs(config)) {
    if (patience == Patience::Call && !c.repository.required) {
      c.repository.retry_time = kLaggingRetryTime;
      c.repository.connect_timeout = std::min(c.repository.connect_timeout, kLaggingConnectTimeout);
      c.repository.timeout = std::min(c.repository.timeout, kLaggingTimeout);
    }
    auto shared = std::make_shared<Config>(c);
    out.push_back({std::move(c), [shared] { return open_storage(*shared); }, patience});
  }
  return out;
}

bool backing_off(const PushTarget& t, std::int64_t now) {
  if (!t.bounded()) return false;
  try {
    auto until = OwedQueue(t.config).retry_after();
    return until && *until > now;
  } catch (const Error& e) {
    spdlog::warn("repository {}: {}", t.name(), e.what());
    return false;
  }
}

void back_off(const PushTarget& t, std::int64_t now) {
  if (!t.bounded()) return;
  try {
    OwedQueue(t.config).set_retry_after(now + kLaggingBackOff);
    spdlog::info("repository {}: no push there before {} (back-off)", t.name(), when_text(now + kLaggingBackOff));
  } catch (const Error& e) {
    spdlog::warn("repository {}: back-off not recorded: {}", t.name(), e.what());
  }
}

PushResult push_everywhere(const std::vector<PushTarget>& targets, const std::string& path,
                           std::set<std::string>* failed, std::int64_t now) {
  if (now == 0) now = static_cast<std::int64_t>(std::time(nullptr));
  std::vector<TargetOutcome> outcomes(targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (auto why = skip_reason(targets[i], now)) outcomes[i] = {std::nullopt, std::move(why), true};
  }
  {
    ThreadGroup workers;
    for (std::size_t i = 1; i < targets.size(); ++i) {
      if (outcomes[i].skipped) continue;
      try {
        workers.start([&, i] { outcomes[i] = push_one(targets[i], path); });
      } catch (const Error& e) {
        spdlog::debug("pushing into repository {} in this thread: {}", targets[i].name(), e.what());
        outcomes[i] = push_one(targets[i], path);
      }
    }
    if (!outcomes[0].skipped) outcomes[0] = push_one(targets[0], path);  // in this thread, beside the others
  }
  std::optional<PushResult> first;
  std::optional<Error> fatal;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const TargetOutcome& o = outcomes[i];
    if (o.result) {
      if (!first) first = o.result;
      continue;
    }
    if (o.skipped) continue;  // bounded, so never fatal; owed below (and caught up when not backing off)
    if (failed) failed->insert(targets[i].name());
    if (may_owe(o.error->kind())) back_off(targets[i], now);
    if (!fatal && (targets[i].config.repository.required || !may_owe(o.error->kind()))) fatal = o.error;
  }
  if (fatal) throw *fatal;
  if (!first) throw first_failure(outcomes);  // stored nowhere: never a success
  const std::string name = base_name(path);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (outcomes[i].error) record_owed(targets[i], name, *outcomes[i].error, now);
    else forget_owed(targets[i], name);
  }
  return *first;
}

}  // namespace pgvault
