#include "common/restore/pitr_options.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "common/base/errors.h"
#include "common/base/text.h"
#include "common/pg/wal.h"

namespace pgvault {

RecoveryTarget recovery_target_from_flags(const TargetFlags& flags) {
  if (flags.time) return {TargetKind::Time, *flags.time, 0, parse_target_time(*flags.time)};
  if (flags.lsn) return {TargetKind::Lsn, *flags.lsn, parse_lsn(*flags.lsn, "--target-lsn"), 0};
  if (flags.xid) {
    // Decimal exactly, written back as read: PostgreSQL reads recovery_target_xid with strtoul(..., 0),
    // so "010" would be xid 8 to it while the target was resolved as 10.
    std::optional<std::uint64_t> xid = parse_decimal_u64(*flags.xid);
    if (!xid) {
      throw Error(ErrorKind::InvalidInput, "--target-xid must be a transaction id (decimal digits, no leading zero), "
                                           "not \"" + *flags.xid + "\"");
    }
    return {TargetKind::Xid, std::to_string(*xid), 0, 0};
  }
  if (flags.name) {
    if (flags.name->empty()) throw Error(ErrorKind::InvalidInput, "--target-name must not be empty");
    // PostgreSQL's limit for restore point names (MAXFNAMELEN - 1): a longer recovery_target_name makes
    // the restored server refuse to start.
    if (flags.name->size() > 63) {
      throw Error(ErrorKind::InvalidInput, "--target-name is " + std::to_string(flags.name->size()) +
                                               " bytes; a restore point name has at most 63");
    }
    return {TargetKind::Name, *flags.name, 0, 0};
  }
  if (flags.special && *flags.special == "immediate") return {TargetKind::Immediate, "", 0, 0};
  return {};
}

std::vector<std::pair<std::string, std::string>> parse_tablespace_map(const std::vector<std::string>& entries) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : entries) {
    auto eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      throw Error(ErrorKind::InvalidInput, "--tablespace-map " + m + ": expected OLD=NEW");
    }
    out.emplace_back(m.substr(0, eq), m.substr(eq + 1));
  }
  return out;
}

std::string restore_command_for(const std::string& wal_fetch, const Config& config,
                                const std::vector<std::string>& sets, const std::optional<std::string>& repo) {
  std::string config_path = config.source == "(defaults)" ? "" : std::filesystem::absolute(config.source).string();
  return make_restore_command(wal_fetch, config_path, sets, repo.value_or(""));
}

void print_restore_result(const RestoreResult& result, const RestoreOptions& opts, bool json) {
  if (json) {
    spdlog::info("{}", restore_summary_line(result, opts));
    std::fputs(restore_summary_json(result, opts).c_str(), stdout);
  } else if (opts.dry_run) {
    std::printf("%s\nsettings for postgresql.auto.conf:\n%s", restore_summary_line(result, opts).c_str(),
                result.settings.c_str());
  } else {
    std::printf("%s\nnext: %s\n", restore_summary_line(result, opts).c_str(), restore_next_command(opts).c_str());
  }
}

}  // namespace pgvault
