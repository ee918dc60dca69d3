#include "common/cli/cli.h"

#include <spdlog/spdlog.h>

#include "common/base/log.h"
#include "common/base/version.h"
#include "common/cli/notify.h"

namespace pgvault {

void add_common_options(CLI::App& app, CommonOptions& opts) {
  app.add_option("--config", opts.config_path,
                 "configuration file (default: $PGVAULT_CONFIG, else /etc/pgvault/pgvault.toml)");
  app.add_option("--set", opts.set, "override a configuration key, e.g. --set repository.path=/backup")
      ->type_name("SECTION.KEY=VALUE");
  app.add_option("--repo", opts.repo,
                 "act on this repository only: \"primary\" ([repository], unless its name key says otherwise) "
                 "or the NAME of a [repositories.NAME] table")
      ->type_name("NAME");
  app.add_flag("-v,--verbose", opts.verbose, "log debug messages");
  app.set_version_flag("--version", std::string("pgvault ") + PGVAULT_VERSION);
}

Config load_tool_config(const CommonOptions& opts) {
  ConfigOverrides overrides;
  for (const auto& s : opts.set) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(ErrorKind::Config, "--set " + s + ": expected SECTION.KEY=VALUE");
    }
    overrides[s.substr(0, eq)] = s.substr(eq + 1);
  }
  Config c = load_config(opts.config_path, overrides);
  if (opts.repo) c = select_repository(c, *opts.repo);
  if (opts.verbose) set_log_level("debug");
  // Precedence: --verbose, --set log.level > PGVAULT_LOG_LEVEL (read by init_logging) > [log] level.
  else if (overrides.count("log.level") > 0 || !std::getenv("PGVAULT_LOG_LEVEL")) set_log_level(c.log.level);
  if (!c.log.file.empty()) add_log_file(c.log.file, c.where("log.file"));
  notify_remember_config(c);
  return c;
}

ToolSpec tool_spec(std::string_view tool, std::function<bool()> standby) {
  const ToolExitCodes& table = exit_codes(tool);
  return {std::string(tool), [&table, standby = std::move(standby)](const Error& e) {
            return exit_code(table, e.kind(), standby && standby());
          }};
}

ToolSpec notifying(ToolSpec spec) {
  spec.notify = true;
  return spec;
}

namespace {

// Runs `body`; an error is logged as one line and mapped, its kind and message kept for [notify].
int run_body(const ToolSpec& spec, const std::function<int()>& body, std::string& kind, std::string& message) {
  try {
    return body();
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    kind = kind_name(e.kind());
    message = e.what();
    return spec.exit_code(e);
  } catch (const std::exception& e) {
    Error internal(ErrorKind::Internal, std::string("internal error: ") + e.what());
    spdlog::error("{}", internal.what());
    kind = kind_name(internal.kind());
    message = internal.what();
    return spec.exit_code(internal);
  }
}

}  // namespace

int run_tool(const ToolSpec& spec, CLI::App& app, int argc, char** argv, const std::function<int()>& body) {
  init_logging(spec.name);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    Error usage(ErrorKind::InvalidInput, std::string(e.what()) + " (see " + spec.name + " --help)");
    spdlog::error("{}", usage.what());
    return spec.exit_code(usage);
  }
  std::string kind, message;
  int code = run_body(spec, body, kind, message);
  if (spec.notify) notify_run_end(spec.name, code, kind, message);
  return code;
}

}  // namespace pgvault
