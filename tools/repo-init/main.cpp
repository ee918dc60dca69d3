// repo-init: create the pgvault repository at the configured location; no other tool creates one.
// Exit codes: docs/EXIT-CODES.md.
#include <cstdio>

#include "common/cli/cli.h"
#include "common/repo/repo.h"

int main(int argc, char** argv) {
  CLI::App app{"Create the pgvault repository at the configured location (a directory, or an S3 bucket and\n"
               "prefix): writes its marker pgvault.repo.json and, when encryption is configured, the key\n"
               "check pgvault.key.json. Every other tool refuses a location without a repository, so an\n"
               "unmounted or mistyped location never becomes one. Run it once, as the user PostgreSQL\n"
               "runs as; the first wal-push records the database system. Running it again changes\n"
               "nothing and checks the configured key against the repository's (exit 5 if it differs).\n"
               "With several repositories ([repositories.NAME]) it creates each of them, in order (one\n"
               "line each; --json: an array), or only the one --repo names.",
               "repo-init"};
  pgvault::CommonOptions common;
  bool json = false;
  app.add_flag("--json", json, "print the result as JSON on stdout");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool(pgvault::tool_spec("repo-init"), app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    const auto configs = pgvault::repository_configs(config);
    std::string out;
    for (const auto& one : configs) {
      pgvault::Repository repo(pgvault::open_storage(one), one);
      pgvault::InitResult r = repo.initialise();
      if (!json) out += pgvault::init_summary_text(repo.describe(), r);
      else out += (out.empty() ? "" : ",\n") + pgvault::init_summary_json(repo.describe(), r);
    }
    if (json && configs.size() > 1) out = "[" + out + "]\n";
    std::fputs(out.c_str(), stdout);
    return 0;
  });
}
