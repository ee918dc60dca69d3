// Local state records (repo/wal_state.h): the last --verify and the WAL tools' counters: atomic
// replacement, damaged or foreign files ignored with a warning, bounded size, no count lost to
// concurrent writers (several processes), and the cost of one record.
#include "common/repo/wal_state.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/fs.h"
#include "common/repo/local_state.h"
#include "common/repo/owed.h"
#include "common/report/prometheus.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::TempDir;

// Collects what spdlog logs at warning level and above while alive.
class WarningLog {
 public:
  WarningLog() : old_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::warn);
    spdlog::set_default_logger(logger);
  }
  ~WarningLog() { spdlog::set_default_logger(old_); }
  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> old_;
  std::ostringstream out_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

struct WalStateTest : ::testing::Test {
  TempDir dir;
  Config config;
  std::string state;  // the repository's folder
  void SetUp() override {
    config.check.state_dir = dir / "state";
    config.repository.path = dir / "repo";
    state = repository_state_dir(config, false);
  }
  WalCounters push_counters() const { return read_wal_counters(config, WalTool::Push).value_or(WalCounters{}); }
};

TEST_F(WalStateTest, StateLivesUnderStateDirPerRepository) {
  EXPECT_EQ(state, dir / ("state/" + repository_state_name(config.repository)));
  Config other = config;
  other.repository.name = "cloud";
  EXPECT_NE(repository_state_dir(other, false), state);
  EXPECT_EQ(local_state_base("", "state", false).rfind("/var/", 0), 0u);
}

TEST_F(WalStateTest, VerifyRecordRoundTripsAndIsReplacedNotRewrittenInPlace) {
  EXPECT_FALSE(read_verify_record(config));
  write_verify_record(config, VerifyRecord{1000, true, "all", 5, 500, 0});
  // A reader holding the old file (a hard link to its inode) keeps the whole old record.
  ASSERT_EQ(::link((state + "/verify.json").c_str(), (dir / "old.json").c_str()), 0);
  const std::string before = slurp(dir / "old.json");
  write_verify_record(config, VerifyRecord{2000, false, "all", 6, 600, 3});
  EXPECT_EQ(slurp(dir / "old.json"), before);
  auto r = read_verify_record(config);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->time, 2000);
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->problems, 3u);
  EXPECT_EQ(r->objects, 6u);
  std::size_t files = 0;
  for (auto it = std::filesystem::directory_iterator(state); it != std::filesystem::directory_iterator(); ++it) ++files;
  EXPECT_EQ(files, 1u) << "no temporary file left";
}

TEST_F(WalStateTest, DamagedOrForeignVerifyRecordIsIgnoredWithAWarning) {
  write_verify_record(config, VerifyRecord{1000, true, "all", 1, 1, 0});
  for (const std::string& text : {std::string("{\"format\": 1, \"time\": "), std::string("not json"),
                                  std::string(70000, 'x')}) {
    put(state + "/verify.json", text);
    WarningLog log;
    EXPECT_FALSE(read_verify_record(config)) << text.substr(0, 20);
    EXPECT_NE(log.text().find("ignoring the verify record"), std::string::npos) << text.substr(0, 20);
  }
  // Written for another repository (the folder copied by hand): not trusted.
  Config other = config;
  other.repository.name = "cloud";
  write_verify_record(other, VerifyRecord{1000, true, "all", 1, 1, 0});
  std::filesystem::copy_file(repository_state_dir(other, false) + "/verify.json", state + "/verify.json",
                             std::filesystem::copy_options::overwrite_existing);
  WarningLog log;
  EXPECT_FALSE(read_verify_record(config));
  EXPECT_NE(log.text().find("another repository"), std::string::npos);
}

TEST_F(WalStateTest, CountersAddUpByOutcomeAndKind) {
  EXPECT_FALSE(read_wal_counters(config, WalTool::Push));
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 100});
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 50});
  record_wal_outcome(config, WalTool::Push, {ErrorKind::Transient, false, 0});
  record_wal_outcome(config, WalTool::Push, {ErrorKind::Transient, false, 0});
  record_wal_outcome(config, WalTool::Push, {ErrorKind::Duplicate, false, 0});
  record_wal_outcome(config, WalTool::Fetch, {std::nullopt, true, 0});
  WalCounters c = push_counters();
  EXPECT_EQ(c.files, 2u);
  EXPECT_EQ(c.bytes, 150u);
  EXPECT_EQ(c.missing, 0u);
  EXPECT_EQ(c.failures, (std::map<std::string, std::uint64_t>{{"duplicate", 1}, {"transient", 2}}));
  auto f = read_wal_counters(config, WalTool::Fetch);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->missing, 1u);
  EXPECT_EQ(f->files, 0u);
}

TEST_F(WalStateTest, DamagedOrForeignCountersAreIgnoredWithAWarningThenStartedAgain) {
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 100});
  const std::string path = state + "/wal-push.counters";
  for (const std::string& text : {std::string("pgvault-wal-counters 1\nrepository primary\nfiles x\n"),
                                  std::string("pgvault-wal-counters 1\nrepository cloud\nfiles 7\n"),
                                  std::string("something else\n"), std::string(20000, '\n')}) {
    put(path, text);
    WarningLog log;
    EXPECT_FALSE(read_wal_counters(config, WalTool::Push)) << text.substr(0, 30);
    EXPECT_NE(log.text().find("ignoring the WAL counters"), std::string::npos) << text.substr(0, 30);
    record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 10});
    EXPECT_EQ(push_counters().files, 1u) << text.substr(0, 30);
    EXPECT_EQ(push_counters().bytes, 10u) << text.substr(0, 30);
  }
}

TEST_F(WalStateTest, CountersStayBounded) {
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 1});
  const std::string path = state + "/wal-push.counters";
  // Lines nobody knows (a newer version, an editor) are dropped at the next update.
  std::ofstream(path, std::ios::app) << "future.key 5\nfailure.no-such-kind 9\n";
  for (int i = 0; i < 300; ++i) {
    record_wal_outcome(config, WalTool::Push, {static_cast<ErrorKind>(i % 13), false, 0});
    record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 16 << 20});
  }
  const std::string text = slurp(path);
  EXPECT_EQ(text.find("future.key"), std::string::npos);
  EXPECT_EQ(text.find("no-such-kind"), std::string::npos);
  EXPECT_LT(text.size(), 600u);
  EXPECT_EQ(push_counters().files, 301u);
  EXPECT_EQ(push_counters().failures.size(), 13u);
}

// Restores the counters' lock patience on the way out.
struct LockPatience {
  explicit LockPatience(std::chrono::milliseconds p) : old(set_wal_counters_lock_patience(p)) {}
  ~LockPatience() { set_wal_counters_lock_patience(old); }
  std::chrono::milliseconds old;
};

TEST_F(WalStateTest, ConcurrentWritersFromSeveralProcessesLoseNoCount) {
  constexpr int kWriters = 4, kEach = 150;
  // The default 100 ms gives up (and loses a count, by design) when a holder is descheduled that long,
  // which a loaded machine does: what is tested here is that the lock protocol loses nothing.
  LockPatience patience(std::chrono::seconds(60));
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0; i < kEach; ++i) {
        if (i % 10 == 0) record_wal_outcome(config, WalTool::Push, {ErrorKind::Io, false, 0});
        else record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 3});
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  WalCounters c = push_counters();
  EXPECT_EQ(c.files, static_cast<std::uint64_t>(kWriters * kEach * 9 / 10));
  EXPECT_EQ(c.bytes, static_cast<std::uint64_t>(kWriters * kEach * 9 / 10 * 3));
  EXPECT_EQ(c.failures["io"], static_cast<std::uint64_t>(kWriters * kEach / 10));
}

TEST_F(WalStateTest, ALockHeldPastThePatienceLosesThisCountOnlyAndNeverThrows) {
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 1});
  LockPatience patience(std::chrono::milliseconds(30));
  {
    Fd other(::open((state + "/wal-push.counters.lock").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_GE(other.get(), 0);
    ASSERT_EQ(::flock(other.get(), LOCK_EX | LOCK_NB), 0);  // another open file: conflicts like a process
    const auto start = std::chrono::steady_clock::now();
    EXPECT_NO_THROW(record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 1}));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30)) << "it waited";
    EXPECT_EQ(push_counters().files, 1u) << "not counted while the lock is held";
  }
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 1});
  EXPECT_EQ(push_counters().files, 2u);
}

TEST_F(WalStateTest, AWriteFailureIsNeverThrown) {
  config.check.state_dir = dir / "file";
  put(dir / "file", "not a folder");
  WarningLog log;
  EXPECT_NO_THROW(record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 1}));
  EXPECT_EQ(log.text(), "") << "a debug line only";
}

// The record is on wal-push's hot path: thousands in a row (one per segment, as a backlog drains) are
// each counted, none lost to the lock or to the file's replacement. What one costs is printed for a
// developer, not asserted: speed is the benchmark's (tests/bench), and a timed test on a shared machine
// fails by chance (this one did under ASan at 4.8 ms against a 2 ms bound).
TEST_F(WalStateTest, ThousandsOfRecordsInARowAreEachCounted) {
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 1});
  constexpr int kRuns = 2000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 16 << 20});
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / kRuns;
  std::printf("[ cost     ] one WAL counters record: %.1f us elapsed\n", us);
  const WalCounters c = push_counters();
  EXPECT_EQ(c.files, static_cast<std::uint64_t>(kRuns + 1));
  EXPECT_EQ(c.bytes, static_cast<std::uint64_t>(kRuns) * (16u << 20) + 1);
}

TEST_F(WalStateTest, RecordedCallCountsOutcomesForEveryRepositoryAndRethrows) {
  put(dir / "000000010000000000000001", std::string(4096, 'w'));
  const std::string file = dir / "000000010000000000000001";
  EXPECT_TRUE(recorded_wal_call(config, WalTool::Push, file, [] { return true; }));
  EXPECT_THROW_KIND(recorded_wal_call(config, WalTool::Push, file,
                                      []() -> bool { throw Error(ErrorKind::Transient, "unreachable"); }),
                    ErrorKind::Transient);
  EXPECT_THROW(recorded_wal_call(config, WalTool::Push, file, []() -> bool { throw std::logic_error("bug"); }),
               std::logic_error);
  WalCounters c = push_counters();
  EXPECT_EQ(c.files, 1u);
  EXPECT_EQ(c.bytes, 4096u);
  EXPECT_EQ(c.failures, (std::map<std::string, std::uint64_t>{{"internal", 1}, {"transient", 1}}));
  EXPECT_FALSE(recorded_wal_call(config, WalTool::Fetch, dir / "absent", [] { return false; }));
  EXPECT_EQ(read_wal_counters(config, WalTool::Fetch)->missing, 1u);
}

TEST_F(WalStateTest, AFileOwedToALaggingRepositoryIsNotCountedThere) {
  Config::Repository cloud = config.repository;
  cloud.name = "cloud";
  cloud.path = dir / "cloud";
  cloud.required = false;
  config.repositories = {{config.repository, config.retention}, {cloud, config.retention}};
  config.push.owed_dir = dir / "owed";
  const std::string file = dir / "000000010000000000000002";
  put(file, "x");
  Config narrowed_cloud = select_repository(config, "cloud");
  OwedQueue(narrowed_cloud).add("000000010000000000000002", 1);
  recorded_wal_call(config, WalTool::Push, file, [] { return true; });
  EXPECT_EQ(read_wal_counters(select_repository(config, "primary"), WalTool::Push)->files, 1u);
  EXPECT_FALSE(read_wal_counters(narrowed_cloud, WalTool::Push));
  // Not owed: counted there too.
  put(dir / "000000010000000000000003", "y");
  recorded_wal_call(config, WalTool::Push, dir / "000000010000000000000003", [] { return true; });
  EXPECT_EQ(read_wal_counters(narrowed_cloud, WalTool::Push)->files, 1u);
}

TEST_F(WalStateTest, PrometheusExportsTheLocalState) {
  record_wal_outcome(config, WalTool::Push, {std::nullopt, false, 100});
  record_wal_outcome(config, WalTool::Push, {ErrorKind::Auth, false, 0});
  record_wal_outcome(config, WalTool::Fetch, {std::nullopt, false, 70});
  RepositoryView v;
  v.name = "primary";
  v.error = "unreachable";  // local state is exported all the same
  v.last_verify = VerifyRecord{900, false, "all", 1, 1, 2};
  v.push_counters = read_wal_counters(config, WalTool::Push);
  v.fetch_counters = read_wal_counters(config, WalTool::Fetch);
  std::vector<RepositoryView> views;
  views.push_back(std::move(v));
  const std::string text = prometheus_text(views, std::nullopt, 1000);
  const std::string l = "{repository=\"primary\"}";
  for (const std::string& line :
       {"pgvault_verify_age_seconds" + l + " 100", "pgvault_verify_last_ok" + l + " 0",
        "pgvault_wal_archived_total" + l + " 1", "pgvault_wal_archived_bytes_total" + l + " 100",
        std::string("pgvault_wal_push_failures_total{repository=\"primary\",kind=\"auth\"} 1"),
        std::string("pgvault_wal_push_failures_total{repository=\"primary\",kind=\"transient\"} 0"),
        "pgvault_wal_fetched_total" + l + " 1", "pgvault_wal_fetched_bytes_total" + l + " 70",
        std::string("# TYPE pgvault_wal_archived_total counter")}) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
  }
}

}  // namespace
}  // namespace pgvault
