// Notifications (cli/notify.h): the event's JSON, the command's stdin and environment, failures and
// timeouts of the notifier, and run_tool: one event per failed run, none on success unless asked, and
// the tool's exit code unchanged whatever the notifier does.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <sstream>

#include "common/cli/cli.h"
#include "common/cli/notify.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

NotifyEvent sample() {
  return {"base-push", "failure", 1, "transient", "cannot connect to \"db\"\n", "primary (/r)", "", "h", 42,
          "2026-11-30T12:00:00Z"};
}

TEST(Notify, EventJsonHasEveryField) {
  std::string text = notify_event_json(sample());
  EXPECT_EQ(text.find('\n'), text.size() - 1);  // one line
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["tool"], "base-push");
  EXPECT_EQ(j["event"], "failure");
  EXPECT_EQ(j["exit_code"], 1);
  EXPECT_EQ(j["error_kind"], "transient");
  EXPECT_EQ(j["message"], "cannot connect to \"db\"\n");
  EXPECT_EQ(j["repository"], "primary (/r)");
  EXPECT_EQ(j["backup"], "");
  EXPECT_EQ(j["host"], "h");
  EXPECT_EQ(j["pid"], 42);
  EXPECT_EQ(j["time"], "2026-11-30T12:00:00Z");
}

TEST(Notify, CommandGetsTheEventOnStdinAndTheEnvironment) {
  TempDir t;
  std::string cmd = "cat > " + t / "in" + "; echo \"$PGVAULT_EVENT $PGVAULT_TOOL $PGVAULT_EXIT_CODE\" > " + t / "env";
  EXPECT_EQ(run_notifier(cmd, sample(), 10), "");
  EXPECT_EQ(slurp(t / "in"), notify_event_json(sample()));
  EXPECT_EQ(slurp(t / "env"), "failure base-push 1\n");
}

TEST(Notify, FailureAndTimeoutAreReported) {
  EXPECT_EQ(run_notifier("echo oops >&2; exit 7", sample(), 10), "exited with code 7");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_notifier("sleep 30", sample(), 1), "did not finish within 1s (killed)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// run_tool with [notify] command appending each event's JSON to a file; `fail` says whether the body fails.
int run_with_notify(const std::string& command, const std::string& on, bool fail, bool opt_in = true) {
  Config c;
  c.notify.command = command;
  c.notify.always = on == "always";
  c.notify.timeout = 2;
  notify_remember_config(c);
  CLI::App app{"t", "base-push"};
  char name[] = "base-push";
  char* argv[] = {name, nullptr};
  ToolSpec spec = tool_spec("base-push");
  if (opt_in) spec = notifying(spec);
  return run_tool(spec, app, 1, argv, [&] {
    if (fail) throw Error(ErrorKind::Auth, "password authentication failed");
    return 0;
  });
}

TEST(Notify, RunToolSendsOneEventPerFailureAndKeepsTheExitCode) {
  TempDir t;
  const std::string append = "cat >> " + t / "events";
  EXPECT_EQ(run_with_notify(append, "failure", false), 0);
  EXPECT_EQ(slurp(t / "events"), "");  // success: nothing
  EXPECT_EQ(run_with_notify(append, "failure", true), 5);
  auto j = nlohmann::json::parse(slurp(t / "events"));
  EXPECT_EQ(j["event"], "failure");
  EXPECT_EQ(j["exit_code"], 5);
  EXPECT_EQ(j["error_kind"], kind_name(ErrorKind::Auth));
  EXPECT_EQ(run_with_notify(append, "always", false), 0);
  std::stringstream lines(slurp(t / "events"));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) ++n;
  EXPECT_EQ(n, 2);
  EXPECT_NE(slurp(t / "events").find("\"event\":\"success\""), std::string::npos);
  // A failing or hanging notifier never changes the code; a tool that did not opt in sends nothing.
  EXPECT_EQ(run_with_notify("exit 3", "always", false), 0);
  EXPECT_EQ(run_with_notify("sleep 30", "failure", true), 5);
  EXPECT_EQ(run_with_notify(append, "always", true, false), 5);
  std::stringstream again(slurp(t / "events"));
  n = 0;
  while (std::getline(again, line)) ++n;
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace pgvault
