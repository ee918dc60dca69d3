// An outage of a lagging repository never stalls a wal-push call (archive/multi_push.h, issue 14): the
// bounded budget of the call path, an owing repository caught up instead of pushed into, the back-off.
#include <gtest/gtest.h>

#include <ctime>

#include "archive/multi_push_fixture.h"
#include "common/archive/multi_push.h"
#include "common/base/errors.h"
#include "common/repo/owed.h"

using namespace pgvault;
using namespace pgvault::archive_test;

namespace {

const PushTarget& target(const std::vector<PushTarget>& targets, const std::string& name) {
  for (const auto& t : targets) {
    if (t.name() == name) return t;
  }
  throw Error(ErrorKind::Internal, "no target " + name);
}

}  // namespace

TEST_F(MultiFixture, AnOwingRepositoryIsOwedWithoutAPushThenCaughtUpInTheCall) {
  OwedQueue(select_repository(config, "cloud")).add(seg_name(1), std::time(nullptr));  // a blip, no back-off
  push_everywhere(targets(), push_seg(1));  // primary only: the cloud stays owed (still no back-off)
  ASSERT_EQ(owed(), (std::vector<std::string>{seg_name(1)}));
  cloud_calls = 0;
  std::set<std::string> failed;
  EXPECT_EQ(push_everywhere(targets(), push_seg(2), &failed).outcome, PushOutcome::Stored);
  EXPECT_EQ(cloud_calls.load(), 0);  // not tried: recorded owed behind the older file
  EXPECT_EQ(owed(), (std::vector<std::string>{seg_name(1), seg_name(2)}));
  EXPECT_TRUE(failed.empty());  // so the call's catch-up works on it (catch_up skips `failed`)
  EXPECT_EQ(catch_up(targets(), failed, 2, std::nullopt).pushed, 2u);
  EXPECT_TRUE(owed().empty());
  cloud_puts = 0;
  push_everywhere(targets(), push_seg(3));  // drained: the next call pushes directly again
  EXPECT_EQ(cloud_puts.load(), 1);
  EXPECT_TRUE(owed().empty());
}

TEST_F(MultiFixture, AFailedPushBacksOffTheCallsButNotTheCatchUpCommand) {
  cloud_down = true;
  const std::int64_t now = std::time(nullptr);
  push_everywhere(targets(), push_seg(1), nullptr, now);
  EXPECT_EQ(cloud_queue().retry_after(), now + kLaggingBackOff);
  cloud_down = false;
  cloud_queue().remove(seg_name(1));  // owes nothing: only the back-off stops the calls
  cloud_calls = 0;
  push_everywhere(targets(), push_seg(2), nullptr, now + 1);
  EXPECT_EQ(cloud_calls.load(), 0);  // backing off: owed without an attempt
  EXPECT_EQ(owed(), (std::vector<std::string>{seg_name(2)}));
  EXPECT_EQ(catch_up(targets(), {}, 2, std::nullopt).pushed, 0u);  // the call's catch-up waits too
  EXPECT_EQ(cloud_calls.load(), 0);
  catch_up_command(config, "");  // cron's catch-up ignores the back-off, and forgets it once drained
  EXPECT_TRUE(owed().empty());
  EXPECT_FALSE(cloud_queue().retry_after());
  push_everywhere(targets(), push_seg(3), nullptr, now + 2);
  EXPECT_GT(cloud_puts.load(), 0);
  EXPECT_TRUE(owed().empty());
}

TEST_F(MultiFixture, AnExpiredBackOffLetsTheCallTryAgain) {
  cloud_queue().set_retry_after(std::time(nullptr) - 1);
  push_everywhere(targets(), push_seg(1));
  EXPECT_TRUE(owed().empty());
  EXPECT_GT(cloud_puts.load(), 0);
}

TEST_F(MultiFixture, TheCatchUpCommandReportsDifferentContentAndKeepsItOwed) {
  Repository c(make_fs_storage(cloud_path), config);
  push_wal(c, push_seg(1));
  Repository p(make_fs_storage(repo_path), config);
  push_wal(p, put_file(seg_name(1), make_segment(42, 1, 99, kSeg, 1)));
  cloud_queue().add(seg_name(1), std::time(nullptr));
  EXPECT_THROW_KIND(catch_up_command(config, "cloud"), ErrorKind::Duplicate);
  EXPECT_EQ(owed(), (std::vector<std::string>{seg_name(1)}));
}

TEST_F(MultiFixture, OnlyLaggingRepositoriesInTheCallGetTheBoundedBudget) {
  for (auto& r : config.repositories) {
    r.repository.timeout = 60;
    r.repository.connect_timeout = 10;
    r.repository.retry_time = 120;
  }
  const std::vector<PushTarget> call = push_targets(config);
  const Config::Repository& lag = target(call, "cloud").config.repository;
  EXPECT_EQ(lag.retry_time, kLaggingRetryTime);
  EXPECT_EQ(lag.connect_timeout, kLaggingConnectTimeout);
  EXPECT_EQ(lag.timeout, kLaggingTimeout);
  const Config::Repository& req = target(call, "primary").config.repository;
  EXPECT_EQ(req.retry_time, 120);
  EXPECT_EQ(req.connect_timeout, 10);
  EXPECT_EQ(req.timeout, 60);
  for (const auto& t : push_targets(config, Patience::Full)) {
    EXPECT_EQ(t.config.repository.retry_time, 120) << t.name();
    EXPECT_EQ(t.config.repository.connect_timeout, 10) << t.name();
    EXPECT_EQ(t.config.repository.timeout, 60) << t.name();
    EXPECT_FALSE(t.bounded()) << t.name();
  }
  cloud().timeout = 2;  // smaller settings of its own stay
  cloud().connect_timeout = 1;
  const std::vector<PushTarget> again = push_targets(config);  // kept alive: `small` refers into it
  const Config::Repository& small = target(again, "cloud").config.repository;
  EXPECT_EQ(small.timeout, 2);
  EXPECT_EQ(small.connect_timeout, 1);
  EXPECT_TRUE(target(again, "cloud").bounded());
}
