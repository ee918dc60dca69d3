// fetch_wal and restore_command (archive.h): one WAL file from the repository, or from the prefetch
// spool, checked before PostgreSQL sees it.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/archive/archive.h"
#include "common/archive/spool.h"
#include "common/archive/wal_checks.h"
#include "common/base/errors.h"
#include "common/base/fs.h"

namespace pgvault {

namespace {

// Passes decoded bytes on to `out` and, before finishing it (the rename into place), checks a
// segment's size and first page header against the requested name and the repository's identity.
class HandOverCheck final : public Sink {
 public:
  HandOverCheck(Sink& out, const WalFileName& name, const Identity& id, std::string where)
      : out_(out), name_(name), id_(id), where_(std::move(where)) {}
  void write(ByteView d) override {
    if (header_.size() < kWalLongHeaderSize) {
      std::size_t n = std::min(kWalLongHeaderSize - header_.size(), d.size());
      header_.insert(header_.end(), d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
    }
    size_ += d.size();
    out_.write(d);
  }
  void finish() override {
    if (has_page_header(name_)) check_hand_over(header_, size_, name_, id_.wal_segment_size, id_.system_identifier, where_);
    out_.finish();
  }

 private:
  Sink& out_;
  const WalFileName& name_;
  const Identity& id_;
  std::string where_;
  Bytes header_;
  std::uint64_t size_ = 0;
};

// The repositories as pointers, in order.
std::vector<Repository*> pointers(const std::vector<std::unique_ptr<Repository>>& repos) {
  std::vector<Repository*> out;
  for (const auto& r : repos) out.push_back(r.get());
  return out;
}

// `f` over the repositories of `fast` (opened FallThroughFast); when it fails with several repositories,
// once more over every repository opened with its whole retry_time, so a passing outage of the nearest
// one is waited out as before instead of failing a call the next one cannot serve. "Missing" is an
// answer of every repository, not a failure: it is never retried.
template <class F>
auto patiently(const Config& config, const std::vector<Repository*>& fast, F&& f) -> decltype(f(fast)) {
  if (fast.size() <= 1) return f(fast);
  try {
    return f(fast);
  } catch (const Error& e) {
    spdlog::warn("{}; trying every repository again, each for its whole retry_time", e.what());
  }
  const std::vector<std::unique_ptr<Repository>> patient = open_fetch_repositories(config, FetchPatience::Full);
  return f(pointers(patient));
}

// Segment size and system of this recovery; the spool folder is chosen by the system identifier of
// pg_control when it was read (no storage request), else by the first repository's that answers.
SpoolOwner spool_owner(const Config& config, const std::vector<Repository*>& repos,
                       std::optional<std::uint64_t> control_sysid) {
  SpoolOwner owner{fetch_spool_owner(repos), 0, 0};
  if (control_sysid) {
    owner.system_identifier = *control_sysid;
  } else {
    owner.system_identifier = patiently(config, repos, [](const std::vector<Repository*>& r) {
                                return fetch_identity(r, std::nullopt);
                              }).system_identifier;
  }
  return owner;
}

// The prefetch spool folder of `owner`, created when missing; "" (prefetch disabled, with a warning)
// when it cannot be.
std::string open_spool(const Config& config, const SpoolOwner& owner) {
  try {
    return prefetch_spool_dir(config.fetch.spool, owner.repository, owner.system_identifier);
  } catch (const Error& e) {
    spdlog::warn("prefetch disabled: {}", e.what());
    return "";
  }
}

// A history, .backup or .partial file: fetched; "missing" still ends prefetching.
FetchOutcome fetch_other(const Config& config, const std::vector<Repository*>& repos, const std::string& name,
                         const std::string& dest, std::optional<std::uint64_t> control_sysid) {
  FetchOutcome outcome = patiently(config, repos, [&](const std::vector<Repository*>& r) {
    return fetch_wal_any(r, name, dest, control_sysid);
  });
  if (outcome == FetchOutcome::Missing) {  // the identities exist: "missing" needs them
    const std::string spool = open_spool(config, spool_owner(config, repos, control_sysid));
    if (!spool.empty()) stop_prefetching(spool);
  }
  return outcome;
}

// Recovery goes on: tidy the spool and make sure a worker prefetches what follows.
void keep_prefetching(const std::string& spool, const std::string& name, const std::function<void()>& spawn_worker) {
  ::unlink((spool + "/" + kPrefetchStopFile).c_str());  // recovery goes on
  clear_spool(spool, name);  // older segments and other timelines' leftovers
  prune_spool(spool, 3600);  // anything an interrupted worker left behind
  remove_stale_temp_files(spool);
  if (SpoolLock(spool).held()) spawn_worker();  // the probe lock is released before the worker starts
}

}  // namespace

FetchOutcome fetch_wal(Repository& repo, const std::string& name_arg, const std::string& dest,
                       std::optional<std::uint64_t> control_sysid, Digest* digest) {
  auto name = WalFileName::parse(name_arg);
  if (!name) {
    throw Error(ErrorKind::InvalidInput, "\"" + name_arg + "\" is not a WAL file name");
  }
  // Segments need the identity to be checked against; history and .backup files (no page header) are
  // served from a repository without one, as long as no identity names another system.
  const std::optional<Identity> found = matching_identity(repo, control_sysid);
  if (!found && has_page_header(*name)) throw no_identity(repo);
  const Identity id = found.value_or(Identity{});
  const std::string key = keys::wal(*name);
  std::unique_ptr<Source> src;
  try {
    src = repo.storage().get(key);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
    // "Not in the archive" ends recovery, so be sure the archive itself is there: an unmounted
    // directory or a wrong bucket must not look like the end of the WAL.
    if (!found) throw no_identity(repo);
    spdlog::debug("{} is not in the archive", name_arg);
    return FetchOutcome::Missing;
  }
  const std::string where = repo.describe() + "/" + key;
  AtomicFileWriter out(dest, /*no_replace=*/false, /*durable=*/false, 0600);
  HandOverCheck check(out, *name, id, where);
  ObjectDecoder dec(check, repo.read_key(), key, where);
  pump(*src, dec);  // the decoder finishes `check` (which commits `out`) only after every check passed
  if (digest) *digest = dec.digest();
  spdlog::debug("restored {} from {}", name_arg, repo.describe());
  return FetchOutcome::Fetched;
}

FetchOutcome restore_command(const Config& config, const std::string& name, const std::string& dest,
                             const std::function<void()>& spawn_worker) {
  const std::vector<std::unique_ptr<Repository>> opened =
      open_fetch_repositories(config, FetchPatience::FallThroughFast);
  const std::vector<Repository*> repos = pointers(opened);
  const auto control_sysid = read_control_system_identifier(".");
  if (int n = remove_stale_temp_files(parent_dir(dest))) spdlog::debug("removed {} stale temporary file(s) beside {}", n, dest);
  auto fetch_any = [&](const std::vector<Repository*>& r) { return fetch_wal_any(r, name, dest, control_sysid); };
  auto wal = WalFileName::parse(name);
  if (config.fetch.prefetch == 0 || !wal) return patiently(config, repos, fetch_any);
  if (wal->kind != WalFileKind::Segment) return fetch_other(config, repos, name, dest, control_sysid);

  const SpoolOwner owner = spool_owner(config, repos, control_sysid);
  const std::string spool = open_spool(config, owner);
  if (spool.empty()) return patiently(config, repos, fetch_any);
  FetchOutcome outcome = FetchOutcome::Fetched;
  if (take_prefetched(spool, *wal, dest, owner)) {
    spdlog::debug("restored {} from the prefetch spool", name);
  } else {
    outcome = patiently(config, repos, fetch_any);
  }
  if (outcome == FetchOutcome::Missing) {
    stop_prefetching(spool);
    return outcome;
  }
  keep_prefetching(spool, name, spawn_worker);
  return outcome;
}

void clear_prefetch_spool(const Config& config) {
  const std::vector<std::unique_ptr<Repository>> opened = open_fetch_repositories(config);
  const std::vector<Repository*> repos = pointers(opened);
  std::vector<std::string> owners{fetch_spool_owner(repos)};  // wal-fetch with every repository
  if (repos.size() > 1) {
    for (Repository* r : repos) owners.push_back(r->describe());  // wal-fetch --repo NAME
  }
  for (const auto& owner : owners) {
    for (const auto& dir : prefetch_spool_dirs(config.fetch.spool, owner)) {
      clear_spool(dir, "");
      remove_stale_temp_files(dir);
    }
  }
}

FetchErrorMode fetch_error_mode(const std::string& on_error, const std::string& datadir) {
  if (on_error == "abort") return FetchErrorMode::Abort;
  if (on_error == "missing") return FetchErrorMode::Missing;
  struct stat st;
  return ::stat((datadir + "/standby.signal").c_str(), &st) == 0 ? FetchErrorMode::Missing : FetchErrorMode::Abort;
}

}  // namespace pgvault
