#include "common/archive/archive.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "common/archive/spool.h"
#include "common/base/errors.h"
#include "common/base/fs.h"
#include "common/base/threads.h"

extern char** environ;

namespace pgvault {
namespace {

// A sink that only counts: decoding into it verifies an object without keeping it.
class DiscardSink final : public Sink {
 public:
  void write(ByteView) override {}
  void finish() override {}
};

// The major version from PG_VERSION in the working directory (the data directory under
// archive_command), else from the WAL page magic.
int detect_pg_version(std::uint16_t magic) {
  std::ifstream in("PG_VERSION");
  int v = 0;
  if (in >> v && v >= 10) return v;
  return pg_version_for_wal_magic(magic);
}

Digest file_digest(const std::string& path) {
  FileSource src(path);
  Sha256 h;
  Bytes buf(1 << 20);
  std::uint64_t size = 0;
  for (;;) {
    std::size_t n = src.read(buf);
    if (n == 0) break;
    h.update(ByteView(buf.data(), n));
    size += n;
  }
  return Digest{h.final(), size};
}

std::string describe_digest(const Digest& d) { return d.describe(); }

}  // namespace

PushResult push_wal(Repository& repo, const std::string& path) {
  std::string file_name = base_name(path);
  auto name = WalFileName::parse(file_name);
  if (!name) {
    throw Error(ErrorKind::InvalidInput,
                "\"" + path + "\" is not a WAL file name (expected a segment such as 000000010000000000000001, "
                "a .partial, .history or .backup file)");
  }

  // Load and check the encryption key before anything is written, so a bad key changes nothing.
  repo.write_key();

  std::unique_ptr<FileSource> src;
  try {
    src = std::make_unique<FileSource>(path);
  } catch (const Error& e) {
    throw Error(ErrorKind::InvalidInput, std::string("cannot read WAL file: ") + e.what());
  }

  if (name->kind == WalFileKind::Segment || name->kind == WalFileKind::Partial) {
    Bytes page(kWalLongHeaderSize);
    std::size_t got = 0;
    while (got < page.size()) {
      std::size_t n = src->read(std::span(page).subspan(got));
      if (n == 0) break;
      got += n;
    }
    page.resize(got);
    WalLongHeader h;
    try {
      h = parse_wal_long_header(page, path);
    } catch (const Error& e) {
      throw Error(ErrorKind::InvalidInput, e.what());
    }
    if (src->file_size() != h.segment_size) {
      throw Error(ErrorKind::InvalidInput, path + " is " + std::to_string(src->file_size()) +
                                               " bytes but its header says the segment size is " +
                                               std::to_string(h.segment_size) + ": refusing a truncated segment");
    }
    // No check of h.timeline against the name: the first segment of a new timeline starts as a copy
    // of the old timeline's segment, so its first page header carries the old timeline.
    Identity proposed;
    proposed.system_identifier = h.system_identifier;
    proposed.pg_version = detect_pg_version(h.magic);
    proposed.wal_segment_size = h.segment_size;
    Identity stored = repo.ensure_identity(proposed);
    if (stored.wal_segment_size != h.segment_size) {
      throw Error(ErrorKind::Foreign, path + ": segment size " + std::to_string(h.segment_size) +
                                          " differs from the repository's " + std::to_string(stored.wal_segment_size));
    }
    src = std::make_unique<FileSource>(path);  // start again at byte 0 (the header is in the page cache)
  }

  const std::string key = keys::wal(*name);
  const std::string where = repo.describe() + "/" + key;
  // No HEAD first: the create-if-absent put is the existence check (a duplicate is the rare case, a
  // re-archive after a crash), which saves a round trip per call on S3.
  // A put that returns stored these bytes: atomically (fs, S3 with conditional writes) or confirmed
  // after the upload (S3 without them: common/storage/s3/s3.h). Duplicate: another call's bytes are there.
  try {
    Digest d = repo.put_object(key, *src, PutOptions{.if_absent = true, .size = src->file_size()});
    spdlog::debug("archived {} to {}", file_name, where);
    return {PushOutcome::Stored, d};
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Duplicate) throw;
    // Already stored (earlier or concurrently): compare below.
  }

  // Already there: PostgreSQL re-archives after a crash, which must succeed when the content is the same.
  // The trailer of an encrypted object holds a keyed claim, not the SHA-256: compare like with like.
  Digest plain = file_digest(path);
  Digest stored = repo.stored_digest(key);
  Digest local = repo.claim_of(key, plain, stored.keyed);
  if (!(stored == local)) {
    throw Error(ErrorKind::Duplicate, file_name + " is already archived with different content (stored: " +
                                          describe_digest(stored) + "; local: " + describe_digest(local) +
                                          "); refusing to overwrite " + where);
  }
  DiscardSink discard;
  try {
    // The decoded digest, not only the trailer read above, must be ours: a writer racing with this
    // call may have replaced the object in between (a store without conditional writes).
    Digest decoded = repo.get_object(key, discard);
    if (!(decoded == plain)) {
      throw Error(ErrorKind::Duplicate, file_name + " is already archived with different content (stored: " +
                                            describe_digest(decoded) + "; local: " + describe_digest(plain) +
                                            "); refusing to overwrite " + where);
    }
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Corruption) throw;
    // The stored copy claims this very content but does not verify: replace it with the good file.
    spdlog::warn("{}: stored copy is corrupt ({}); rewriting it from {}", where, e.what(), path);
    FileSource again(path);
    repo.put_object(key, again, PutOptions{.if_absent = false, .size = again.file_size()});
    return {PushOutcome::Repaired, plain};
  }
  spdlog::info("{} was already archived with identical content ({})", file_name, describe_digest(local));
  return {PushOutcome::AlreadyStored, plain};
}

namespace {

// The files after `current` that PostgreSQL will ask for next: .ready in archive_status, history files
// first (PostgreSQL archives them first), then in name order.
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

}  // namespace

PushOutcome archive_command(const Config& config, const std::string& path) {
  Repository repo(open_storage(config), config);
  const std::string name = base_name(path);
  const bool lookahead = config.push.parallel > 1;
  std::string spool;
  if (lookahead) {
    try {
      spool = spool_dir(config.push.spool, "push", repo.describe());
    } catch (const Error& e) {
      spdlog::warn("look-ahead disabled: {}", e.what());
    }
  }
  if (!spool.empty()) {
    try {
      if (take_push_record(spool, name, file_identity(path))) {
        spdlog::debug("{} was archived ahead by an earlier call", name);
        return PushOutcome::AlreadyStored;
      }
    } catch (const Error&) {
      // No usable record: push normally (which reports a missing file properly).
    }
  }

  repo.require_initialised();  // never create a repository (an unmounted directory, a mistyped bucket)
  ThreadGroup workers;  // joined on every way out
  if (!spool.empty()) {
    const std::string wal_dir = parent_dir(path);
    for (const std::string& next : next_ready(wal_dir, name, static_cast<std::size_t>(config.push.parallel - 1))) {
      auto look_ahead = [&config, &spool, wal_dir, next] {
        const std::string p = wal_dir + "/" + next;
        try {
          FileIdentity id = file_identity(p);
          Repository own(open_storage(config), config);  // one storage connection per thread
          PushResult r = push_wal(own, p);
          write_push_record(spool, next, id, r.digest);
        } catch (const std::exception& e) {
          // Not recorded: PostgreSQL's own call for this file will push it and report any error.
          spdlog::debug("look-ahead push of {} failed: {}", next, e.what());
        }
      };
      try {
        workers.start(look_ahead);
      } catch (const Error& e) {
        spdlog::warn("look-ahead stopped: {}", e.what());  // optional work: the called segment is pushed anyway
        break;
      }
    }
  }
  // Alone, the segment is compressed by two zstd workers (about twice as fast on two cores); beside
  // look-ahead pushes the cores are already busy, so each compresses in its own thread.
  if (workers.empty()) repo.set_auto_threads(std::min(2, static_cast<int>(std::thread::hardware_concurrency())));
  PushOutcome outcome = push_wal(repo, path).outcome;
  if (!spool.empty()) prune_spool(spool, 24 * 3600);
  return outcome;
}

namespace {

Error no_identity(Repository& repo) {
  return Error(ErrorKind::Config, "repository " + repo.describe() + " has no " + keys::identity() +
                                      ": wrong path or bucket, or nothing was ever archived there");
}

// The repository's identity (nullopt when there is none) after checking that, when the data
// directory's pg_control was read, it names the same database system: a repository of another system
// may neither serve a file nor answer "missing".
std::optional<Identity> matching_identity(Repository& repo, std::optional<std::uint64_t> control_sysid) {
  auto id = repo.identity();
  if (id && control_sysid && id->system_identifier != *control_sysid) {
    throw Error(ErrorKind::Foreign, "repository " + repo.describe() + " belongs to database system " +
                                        std::to_string(id->system_identifier) + ", but global/pg_control says " +
                                        std::to_string(*control_sysid) + ": wrong repository for this cluster");
  }
  return id;
}

// The same, and the identity must exist (segments are checked against it; "missing" needs it).
Identity checked_identity(Repository& repo, std::optional<std::uint64_t> control_sysid) {
  auto id = matching_identity(repo, control_sysid);
  if (!id) throw no_identity(repo);
  return *id;
}

bool has_page_header(const WalFileName& name) {
  return name.kind == WalFileKind::Segment || name.kind == WalFileKind::Partial;
}

// Checks a whole segment (its first page header and its size) against the name it is handed over as.
void check_hand_over(ByteView header, std::uint64_t size, const WalFileName& name, std::uint32_t seg_size,
                     std::uint64_t sysid, const std::string& where) {
  if (size != seg_size) {
    throw Error(ErrorKind::Corruption, where + ": " + std::to_string(size) + " bytes, expected a whole segment of " +
                                           std::to_string(seg_size));
  }
  WalLongHeader h = parse_wal_long_header(header, where);
  if (auto bad = check_segment_header(h, name, seg_size, sysid)) throw Error(bad->kind(), where + ": " + bad->what());
}

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

namespace {

// A worker holds this lock for its lifetime; wal-fetch spawns one only when nobody holds it.
class SpoolLock {
 public:
  explicit SpoolLock(const std::string& spool) {
    fd_ = ::open((spool + "/prefetch.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    held_ = fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
  }
  ~SpoolLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

// Whose prefetched files a spool folder holds (recorded in every entry, see spool.h).
struct SpoolOwner {
  std::string repository;  // Repository::describe()
  std::uint64_t system_identifier = 0;
  std::uint32_t segment_size = 0;
};

std::string identity_text(const FileIdentity& id) {
  return std::to_string(id.dev) + " " + std::to_string(id.ino) + " " + std::to_string(id.size) + " " +
         std::to_string(id.mtime_ns) + " " + std::to_string(id.ctime_ns);
}

// "<X>.ready": "<sysid> <segment size> <digest hex> <size> <file identity>\n<repository>\n".
void write_ready(const std::string& data, const SpoolOwner& owner, const Digest& d) {
  AtomicFileWriter w(data + ".ready", false, false, 0600);
  std::string text = std::to_string(owner.system_identifier) + " " + std::to_string(owner.segment_size) + " " +
                     d.hex() + " " + std::to_string(d.size) + " " + identity_text(file_identity(data)) + "\n" +
                     owner.repository + "\n";
  w.write(as_bytes(text));
  w.commit();
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Why the spooled `data` may not be handed over as `name` to `owner`'s recovery; "" when it may.
std::string spool_entry_problem(const std::string& data, const WalFileName& name, const SpoolOwner& owner) {
  std::ifstream in(data + ".ready");
  std::uint64_t sysid = 0, size = 0;
  std::uint32_t seg_size = 0;
  std::string hex, identity, repository;
  if (!(in >> sysid >> seg_size >> hex >> size) || !std::getline(in >> std::ws, identity) ||
      !std::getline(in, repository)) {
    return "its record is unreadable";
  }
  if (repository != owner.repository || sysid != owner.system_identifier) {
    return "it was prefetched from " + repository + " for database system " + std::to_string(sysid);
  }
  try {
    if (identity_text(file_identity(data)) != identity) return "it is not the file the worker verified";
    FileSource src(data);
    Bytes header(kWalLongHeaderSize);
    std::size_t got = 0;
    while (got < header.size()) {
      std::size_t n = src.read(std::span(header).subspan(got));
      if (n == 0) break;
      got += n;
    }
    header.resize(got);
    check_hand_over(header, src.file_size(), name, seg_size, owner.system_identifier, data);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Moves the prefetched copy of `name` to `dest`. When a worker is fetching it right now, waits for it
// (bounded). False when there is none, or when it may not be handed over (then it is thrown away and
// the caller fetches from the repository).
bool take_prefetched(const std::string& spool, const WalFileName& name, const std::string& dest,
                     const SpoolOwner& owner) {
  const std::string data = spool + "/" + name.name, ready = data + ".ready", inflight = data + ".inflight";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!exists(ready) && exists(inflight) && !SpoolLock(spool).held() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!exists(ready)) return false;
  std::string problem = spool_entry_problem(data, name, owner);
  if (problem.empty()) {
    if (::rename(data.c_str(), dest.c_str()) != 0) {
      if (errno != EXDEV) throw errno_error("rename " + data + " to " + dest, errno);
      FileSource src(data);  // another filesystem: copy, still atomically
      AtomicFileWriter out(dest, false, false, 0600);
      pump(src, out);
      ::unlink(data.c_str());
    }
  } else {
    spdlog::warn("prefetched {} discarded ({}); fetching it from the repository", data, problem);
    ::unlink(data.c_str());
  }
  ::unlink(ready.c_str());
  return problem.empty();
}

// Removes prefetched files (and their records) whose segment name sorts before `below`; all of them
// when `below` is empty. A worker's temporary files are its own (prune_spool ages out leftovers).
void clear_spool(const std::string& spool, const std::string& below) {
  DIR* d = ::opendir(spool.c_str());
  if (!d) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() < 24 || !WalFileName::parse(n.substr(0, 24))) continue;
    if (below.empty() || n.substr(0, 24) < below) ::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

const char* const kStopFile = "prefetch.stop";
const char* const kWarnedFile = "prefetch.warned";

// Recovery is ending (or a standby waits for streaming): empty the spool, and ask a running worker to
// stop and empty it again when it is done.
void stop_prefetching(const std::string& spool) {
  clear_spool(spool, "");
  if (!SpoolLock(spool).held()) {
    int fd = ::open((spool + "/" + kStopFile).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
  }
}

// Segment size and system of this recovery; the spool folder is chosen by the system identifier of
// pg_control when it was read (no storage request), else by the repository's.
SpoolOwner spool_owner(Repository& repo, std::optional<std::uint64_t> control_sysid) {
  SpoolOwner owner{repo.describe(), 0, 0};
  if (control_sysid) {
    owner.system_identifier = *control_sysid;
  } else {
    owner.system_identifier = checked_identity(repo, std::nullopt).system_identifier;
  }
  return owner;
}

}  // namespace

namespace {

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

}  // namespace

FetchOutcome restore_command(const Config& config, const std::string& name, const std::string& dest,
                             const std::function<void()>& spawn_worker) {
  Repository repo(open_storage(config), config);
  const auto control_sysid = read_control_system_identifier(".");
  if (int n = remove_stale_temp_files(parent_dir(dest))) spdlog::debug("removed {} stale temporary file(s) beside {}", n, dest);
  auto wal = WalFileName::parse(name);
  if (config.fetch.prefetch == 0 || !wal) return fetch_wal(repo, name, dest, control_sysid);
  if (wal->kind != WalFileKind::Segment) {
    FetchOutcome outcome = fetch_wal(repo, name, dest, control_sysid);
    if (outcome == FetchOutcome::Missing) {  // the identity exists: "missing" needs it
      const std::string spool = open_spool(config, spool_owner(repo, control_sysid));
      if (!spool.empty()) stop_prefetching(spool);
    }
    return outcome;
  }

  const SpoolOwner owner = spool_owner(repo, control_sysid);
  const std::string spool = open_spool(config, owner);
  if (spool.empty()) return fetch_wal(repo, name, dest, control_sysid);
  FetchOutcome outcome = FetchOutcome::Fetched;
  if (take_prefetched(spool, *wal, dest, owner)) {
    spdlog::debug("restored {} from the prefetch spool", name);
  } else {
    outcome = fetch_wal(repo, name, dest, control_sysid);
  }
  if (outcome == FetchOutcome::Missing) {
    stop_prefetching(spool);
    return outcome;
  }
  ::unlink((spool + "/" + kStopFile).c_str());  // recovery goes on
  clear_spool(spool, name);  // older segments and other timelines' leftovers
  prune_spool(spool, 3600);  // anything an interrupted worker left behind
  remove_stale_temp_files(spool);
  if (SpoolLock(spool).held()) spawn_worker();  // the probe lock is released before the worker starts
  return outcome;
}

void clear_prefetch_spool(const Config& config) {
  const std::string repository = open_storage(config)->describe();
  for (const auto& dir : prefetch_spool_dirs(config.fetch.spool, repository)) {
    clear_spool(dir, "");
    remove_stale_temp_files(dir);
  }
}

// Re-executes this program, detached (own session, no stdin/stdout), as the prefetch worker.
void spawn_prefetch_worker(int argc, char** argv, const std::string& name) {
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    if (std::string(*e).rfind(std::string(kPrefetchWorkerEnv) + "=", 0) != 0) env_store.emplace_back(*e);
  }
  env_store.push_back(std::string(kPrefetchWorkerEnv) + "=" + name);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  posix_spawn(&pid, "/proc/self/exe", &actions, &attr, args.data(), envp.data());  // best effort
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
}

namespace {

// Logs a failed prefetch. A failure to write the spool (Io: a full disk, a quota) warns once; until a
// worker gets through its batch without one (kWarnedFile removed) the same failure is logged at debug
// level only.
void log_prefetch_failure(const std::string& spool, const std::string& name, const Error& e) {
  if (e.kind() == ErrorKind::Io) {
    // Creating the marker decides, atomically across threads and calls, who warns.
    int fd = ::open((spool + "/" + kWarnedFile).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    if (fd < 0 && errno == EEXIST) {
      spdlog::debug("prefetch of {} stopped: {}", name, e.what());
      return;
    }
  }
  spdlog::warn("prefetch of {} stopped: {}", name, e.what());
}

}  // namespace

void prefetch_worker(const Config& config, const std::string& name) {
  auto wal = WalFileName::parse(name);
  if (!wal || wal->kind != WalFileKind::Segment || config.fetch.prefetch == 0) return;
  Repository repo(open_storage(config), config);
  std::optional<std::uint64_t> control_sysid;
  Identity id;
  try {
    control_sysid = read_control_system_identifier(".");
    id = checked_identity(repo, control_sysid);
  } catch (const Error& e) {
    spdlog::debug("no prefetch: {}", e.what());  // the caller's own fetch reported it
    return;
  }
  const SpoolOwner owner{repo.describe(), id.system_identifier, id.wal_segment_size};
  std::string spool = prefetch_spool_dir(config.fetch.spool, owner.repository, owner.system_identifier);
  SpoolLock lock(spool);
  if (!lock.held()) return;  // another worker is at it
  const std::string stop_file = spool + "/" + kStopFile;
  const std::uint32_t seg_size = id.wal_segment_size;
  std::uint64_t segno = segment_number(wal->log, wal->seg, seg_size);
  std::vector<std::string> todo;
  for (int i = 1; i <= config.fetch.prefetch; ++i) {
    std::string next = segment_file_name(wal->timeline, segno + static_cast<std::uint64_t>(i), seg_size);
    const std::string data = spool + "/" + next;
    if (exists(data + ".ready")) continue;
    int fd = ::open((data + ".inflight").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    todo.push_back(next);
  }
  // Several fetches at once (storage latency overlaps), taken in order so the next one needed comes first.
  std::atomic<std::size_t> next_index{0};
  std::atomic<bool> stop{false}, spool_failed{false};
  auto work = [&] {
    std::unique_ptr<Repository> own;
    for (std::size_t i; !stop && (i = next_index++) < todo.size();) {
      const std::string data = spool + "/" + todo[i];
      try {
        if (exists(stop_file)) {
          stop = true;
        } else {
          if (!own) own = std::make_unique<Repository>(open_storage(config), config);
          Digest d;
          if (fetch_wal(*own, todo[i], data, control_sysid, &d) == FetchOutcome::Missing) {
            stop = true;  // the end of the archive: nothing after it either
          } else {
            write_ready(data, owner, d);
          }
        }
      } catch (const Error& e) {
        ::unlink(data.c_str());
        stop = true;
        if (e.kind() == ErrorKind::Io) spool_failed = true;
        log_prefetch_failure(spool, todo[i], e);
      } catch (const std::exception& e) {
        ::unlink(data.c_str());
        stop = true;
        spdlog::warn("prefetch of {} stopped: {}", todo[i], e.what());
      }
      ::unlink((data + ".inflight").c_str());
    }
  };
  {
    ThreadGroup threads([&] { stop = true; });
    try {
      threads.start_n(std::min<std::size_t>(todo.size(), 4), work);
    } catch (const Error& e) {
      spdlog::warn("prefetch stopped: {}", e.what());  // the started workers end after their segment
    }
  }
  for (const auto& n : todo) ::unlink((spool + "/" + n + ".inflight").c_str());
  if (!spool_failed) ::unlink((spool + "/" + kWarnedFile).c_str());  // the spool has room again
  if (exists(stop_file)) {  // recovery ended while this worker ran: leave nothing behind
    clear_spool(spool, "");
    ::unlink(stop_file.c_str());
  }
}

FetchErrorMode fetch_error_mode(const std::string& on_error, const std::string& datadir) {
  if (on_error == "abort") return FetchErrorMode::Abort;
  if (on_error == "missing") return FetchErrorMode::Missing;
  struct stat st;
  return ::stat((datadir + "/standby.signal").c_str(), &st) == 0 ? FetchErrorMode::Missing : FetchErrorMode::Abort;
}

}  // namespace pgvault
