// What every tool's main() shares: common flags (--config, --set, --version, --help), config loading,
// and the outermost error handling, so that no exception ever escapes main() (that would be SIGABRT,
// which PostgreSQL reads as a crash).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/errors.h"
#include "common/cli/exit_codes.h"
#include "common/config/config.h"

namespace pgvault {

struct CommonOptions {
  std::optional<std::string> config_path;
  std::vector<std::string> set;  // "section.key=value"
  std::optional<std::string> repo;  // --repo NAME: act on this repository only
  bool verbose = false;
};

// Adds --config, --set, --repo, --verbose and --version to `app`.
void add_common_options(CLI::App& app, CommonOptions& opts);

// Loads the configuration named by the options (see config.h), narrows it to --repo's repository when
// given (select_repository), applies the log level and [log] file, and remembers [notify] for run_tool.
Config load_tool_config(const CommonOptions& opts);

struct ToolSpec {
  std::string name;
  // Maps an error to the process exit code (the tool's row in docs/EXIT-CODES.md). A command line that
  // does not parse is an InvalidInput error.
  std::function<int(const Error&)> exit_code;
  // Send [notify] events after the run (common/cli/notify.h). Default: false (wal-push, wal-fetch...).
  bool notify = false;
};

// `spec` with notifications on: a tool opts in with run_tool(notifying(tool_spec("name")), ...).
ToolSpec notifying(ToolSpec spec);

// The spec of `tool`, mapping errors with its table in exit_codes.h; `standby` (wal-fetch) says, when
// an error is mapped, whether the table's standby rule applies.
ToolSpec tool_spec(std::string_view tool, std::function<bool()> standby = {});

// Parses argv with `app`, runs `body`, logs any error as one line and maps it with spec.exit_code; with
// spec.notify, then sends the [notify] event of the run (notify.h), which never changes the exit code.
int run_tool(const ToolSpec& spec, CLI::App& app, int argc, char** argv, const std::function<int()>& body);

}  // namespace pgvault
