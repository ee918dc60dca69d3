// pitr-prepare: restore a base backup and set the data directory up for point-in-time recovery.
// Exit codes: docs/EXIT-CODES.md.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <climits>
#include <cstdio>
#include <filesystem>

#include "common/archive/archive.h"
#include "common/cli/cli.h"
#include "common/restore/restore.h"

namespace {

int exit_code(const pgvault::Error& e) {
  using K = pgvault::ErrorKind;
  switch (e.kind()) {
    case K::InvalidInput:
    case K::Config: return 2;
    case K::NotFound:        // no usable backup, or WAL the recovery needs is missing: nothing written
    case K::NotInitialised: return 3;  // no repository at all there
    case K::Auth: return 5;
    case K::Corruption: return 6;
    case K::Interrupted: return 130;
    default: return 1;
  }
}

// wal-fetch installed beside this executable.
std::string wal_fetch_path() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw pgvault::Error(pgvault::ErrorKind::Internal, "cannot read /proc/self/exe");
  std::string path = std::filesystem::path(std::string(buf, static_cast<std::size_t>(n))).parent_path() / "wal-fetch";
  if (::access(path.c_str(), X_OK) != 0) {
    throw pgvault::Error(pgvault::ErrorKind::Config, "wal-fetch is not installed beside pitr-prepare (" + path + ")");
  }
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Restore a base backup from the pgvault repository into an empty data directory and write the\n"
               "recovery settings (recovery.signal, postgresql.auto.conf) for point-in-time recovery.\n"
               "Without a target flag, recovery replays all archived WAL (latest).",
               "pitr-prepare"};
  pgvault::CommonOptions common;
  pgvault::RestoreOptions opts;
  std::optional<std::string> t_time, t_lsn, t_xid, t_name, t_special;
  std::vector<std::string> ts_map;
  bool json = false;
  app.add_option("--pgdata,-D", opts.pgdata, "data directory to restore into (absent or empty; see --force)")->required();
  auto* g = app.add_option_group("target", "recovery target (at most one; default: latest)");
  g->add_option("--target-time", t_time, "recover to this time; a time zone is required (2026-11-21 16:41:00+00)");
  g->add_option("--target-lsn", t_lsn, "recover to this WAL location (e.g. 0/5000060)");
  g->add_option("--target-xid", t_xid, "recover to the commit of this transaction id");
  g->add_option("--target-name", t_name, "recover to this restore point (pg_create_restore_point)");
  g->add_option("--target", t_special, "immediate (end of the backup) or latest")
      ->check(CLI::IsMember({"immediate", "latest"}));
  g->require_option(0, 1);
  app.add_option("--target-action", opts.target_action, "when the target is reached: promote (default), pause, shutdown")
      ->check(CLI::IsMember({"promote", "pause", "shutdown"}));
  app.add_option("--target-timeline", opts.target_timeline, "latest (default), current, or a timeline number");
  app.add_flag("--target-exclusive", opts.exclusive, "stop just before the target (recovery_target_inclusive = off)");
  app.add_option("--backup", opts.backup, "label of the backup to restore (default: the newest that can reach the target)");
  app.add_flag("--standby", opts.standby, "write standby.signal instead of recovery.signal");
  app.add_option("--tablespace-map", ts_map, "restore the tablespace at OLD into NEW (repeatable)")->type_name("OLD=NEW");
  app.add_option("--archive-mode", opts.archive_mode,
                 "off (default): write archive_mode = off, so the restored server never archives into the\n"
                 "repository it came from (a test restore's new timeline would land there); preserve: keep the\n"
                 "server's archive settings, for a restore that becomes the new primary")
      ->check(CLI::IsMember({"off", "preserve"}));
  app.add_flag("--force", opts.force, "remove the existing contents of the data directory first");
  app.add_flag("--dry-run", opts.dry_run, "check the plan, the archive and the data directory as a real run does, and\n"
                                         "print the plan; write nothing");
  app.add_option("--parallel", opts.parallel, "bundles decoded at once (default: [backup] parallel; 0 = cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", json, "print a JSON summary on stdout");
  pgvault::add_common_options(app, common);
  return pgvault::run_tool({"pitr-prepare", exit_code}, app, argc, argv, [&] {
    using pgvault::TargetKind;
    auto& t = opts.target;
    if (t_time) t = {TargetKind::Time, *t_time, 0, pgvault::parse_target_time(*t_time)};
    if (t_lsn) t = {TargetKind::Lsn, *t_lsn, pgvault::parse_lsn(*t_lsn, "--target-lsn"), 0};
    if (t_xid) {
      if (t_xid->empty() || t_xid->find_first_not_of("0123456789") != std::string::npos) {
        throw pgvault::Error(pgvault::ErrorKind::InvalidInput, "--target-xid must be a transaction id (digits)");
      }
      t = {TargetKind::Xid, *t_xid, 0, 0};
    }
    if (t_name) {
      if (t_name->empty()) throw pgvault::Error(pgvault::ErrorKind::InvalidInput, "--target-name must not be empty");
      t = {TargetKind::Name, *t_name, 0, 0};
    }
    if (t_special && *t_special == "immediate") t = {TargetKind::Immediate, "", 0, 0};
    for (const auto& m : ts_map) {
      auto eq = m.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
        throw pgvault::Error(pgvault::ErrorKind::InvalidInput, "--tablespace-map " + m + ": expected OLD=NEW");
      }
      opts.tablespace_map.emplace_back(m.substr(0, eq), m.substr(eq + 1));
    }
    pgvault::Config config = pgvault::load_tool_config(common);
    std::string config_path = config.source == "(defaults)" ? "" : std::filesystem::absolute(config.source).string();
    opts.restore_command = pgvault::make_restore_command(wal_fetch_path(), config_path, common.set);
    opts.progress = isatty(STDERR_FILENO) != 0;
    pgvault::Repository repo(pgvault::open_storage(config), config);
    repo.require_initialised();
    pgvault::RestoreResult r = pgvault::run_restore(repo, opts);
    if (!opts.dry_run) pgvault::clear_prefetch_spool(config);  // nothing prefetched for an earlier recovery
    if (json) {
      spdlog::info("{}", pgvault::restore_summary_line(r, opts));
      std::fputs(pgvault::restore_summary_json(r, opts).c_str(), stdout);
    } else if (opts.dry_run) {
      std::printf("%s\nsettings for postgresql.auto.conf:\n%s", pgvault::restore_summary_line(r, opts).c_str(),
                  r.settings.c_str());
    } else {
      std::printf("%s\nnext: %s\n", pgvault::restore_summary_line(r, opts).c_str(),
                  pgvault::restore_next_command(opts).c_str());
    }
    return 0;
  });
}
