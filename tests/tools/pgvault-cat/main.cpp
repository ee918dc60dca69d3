// pgvault-cat (test-only): decodes repository objects through the codec, verifying them.
//   pgvault-cat --config C KEY            the decoded object on stdout (e.g. backups/<label>/manifest.json)
//   pgvault-cat --config C --list PREFIX  the keys under PREFIX, one a line
// Exit: 0 ok, 1 not found, 2 any other error.
#include <unistd.h>

#include <cstdio>

#include "common/base/fs.h"
#include "common/cli/cli.h"
#include "common/repo/repo.h"

namespace {

class StdoutSink final : public pgvault::Sink {
 public:
  void write(pgvault::ByteView d) override { pgvault::write_full(STDOUT_FILENO, d, "stdout"); }
  void finish() override {}
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Decode a pgvault repository object to stdout (tests only).", "pgvault-cat"};
  pgvault::CommonOptions common;
  std::string key;
  bool list = false;
  app.add_option("key", key, "object key, or a prefix with --list")->required();
  app.add_flag("--list", list, "list the keys under a prefix");
  pgvault::add_common_options(app, common);
  auto code = [](const pgvault::Error& e) { return e.kind() == pgvault::ErrorKind::NotFound ? 1 : 2; };
  return pgvault::run_tool({"pgvault-cat", code}, app, argc, argv, [&] {
    pgvault::Config config = pgvault::load_tool_config(common);
    pgvault::Repository repo(pgvault::open_storage(config), config);
    if (list) {
      for (const auto& o : repo.storage().list(key)) std::printf("%s\n", o.key.c_str());
      return 0;
    }
    StdoutSink out;
    repo.get_object(key, out);
    return 0;
  });
}
