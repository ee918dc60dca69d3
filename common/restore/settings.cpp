// The recovery settings (postgresql.auto.conf), the signal file, and the command lines pitr-prepare
// writes or prints (restore_command, the next step).
#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <string_view>

#include "common/base/text.h"
#include "common/restore/restore_steps.h"

namespace pgvault {

using namespace restore_detail;

namespace {

// Ends the archive_mode line pitr-prepare writes, so a later restore (of a backup of a restored server)
// recognises it as its own; the server's own archive_mode lines are never touched.
const char* const kArchiveModeMark = "  # pitr-prepare --archive-mode off: this restore does not archive";

std::string shell_quote(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_/.,:=@%+-").find(c) != std::string_view::npos)) {
      plain = false;
    }
  }
  if (plain) return s;
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

// A value in single quotes for postgresql.conf. A control byte is written as a 3-digit octal escape, which
// PostgreSQL's configuration scanner decodes: a raw newline (a restore point's name may hold one) would end
// the quoted string, so the server refused the file and did not start.
std::string conf_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '\'') {
      out += "''";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (b < 0x20 || b == 0x7f) {
      const char octal[] = {'\\', static_cast<char>('0' + (b >> 6)), static_cast<char>('0' + ((b >> 3) & 7)),
                            static_cast<char>('0' + (b & 7)), '\0'};
      out += octal;
    } else {
      out += c;
    }
  }
  return out + "'";
}

// The setting's name at the start of a postgresql.conf line, lowercase ("" for none).
std::string conf_key(const std::string& line) {
  std::size_t i = 0;
  while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  std::size_t j = i;
  while (j < line.size() && (std::isalnum(static_cast<unsigned char>(line[j])) || line[j] == '_' || line[j] == '.')) ++j;
  std::string key = ascii_lower(line.substr(i, j - i));
  return key;
}

void target_settings(std::ostringstream& o, const RecoveryTarget& t) {
  switch (t.kind) {
    case TargetKind::Latest: break;
    case TargetKind::Immediate: o << "recovery_target = 'immediate'\n"; break;
    case TargetKind::Time: o << "recovery_target_time = " << conf_quote(t.value) << "\n"; break;
    case TargetKind::Lsn: o << "recovery_target_lsn = " << conf_quote(format_lsn(t.lsn)) << "\n"; break;
    case TargetKind::Xid: o << "recovery_target_xid = " << conf_quote(t.value) << "\n"; break;
    case TargetKind::Name: o << "recovery_target_name = " << conf_quote(t.value) << "\n"; break;
  }
}

}  // namespace

std::string make_restore_command(const std::string& wal_fetch, const std::string& config_path,
                                 const std::vector<std::string>& sets, const std::string& repo) {
  std::string cmd = shell_quote(wal_fetch);
  if (!config_path.empty()) cmd += " --config " + shell_quote(config_path);
  for (const auto& s : sets) cmd += " --set " + shell_quote(s);
  if (!repo.empty()) cmd += " --repo " + shell_quote(repo);
  // PostgreSQL replaces %f, %p and %r anywhere in the command and reads %% as %: a path holding
  // "%f" would otherwise have the file name put into it.
  std::string escaped;
  for (char c : cmd) escaped += c == '%' ? std::string("%%") : std::string(1, c);
  return escaped + " %f %p";
}

std::string restore_next_command(const RestoreOptions& opts) {
  return "pg_ctl -D " + shell_quote(opts.pgdata) + " start";
}

std::string recovery_settings(const RestoreOptions& opts, const RestorePlan& plan) {
  std::ostringstream o;
  o << "# Recovery settings written by pitr-prepare (pgvault) at " << now_iso8601() << " for backup "
    << plan.backup.label << "\n";
  o << "restore_command = " << conf_quote(opts.restore_command) << "\n";
  target_settings(o, opts.target);
  if (opts.target.kind != TargetKind::Latest) o << "recovery_target_action = " << conf_quote(opts.target_action) << "\n";
  if (opts.exclusive) o << "recovery_target_inclusive = off\n";
  o << "recovery_target_timeline = "
    << conf_quote(opts.target_timeline == "latest" || opts.target_timeline == "current"
                      ? opts.target_timeline
                      : std::to_string(plan.target_timeline))
    << "\n";
  if (opts.archive_mode == "off") o << "archive_mode = 'off'" << kArchiveModeMark << "\n";
  return o.str();
}

std::string rewrite_auto_conf(const std::string& existing, const std::string& settings) {
  static const std::set<std::string> ours = {
      "restore_command",         "recovery_target",        "recovery_target_time",   "recovery_target_lsn",
      "recovery_target_xid",     "recovery_target_name",   "recovery_target_action", "recovery_target_timeline",
      "recovery_target_inclusive"};
  std::istringstream in(existing);
  std::string line, out;
  while (std::getline(in, line)) {
    std::string key = conf_key(line);
    if (ours.count(key)) continue;
    if (key == "archive_mode" && line.find(kArchiveModeMark) != std::string::npos) continue;  // an earlier restore's
    if (line.rfind("# Recovery settings written by pitr-prepare", 0) == 0) continue;
    out += line + "\n";
  }
  return out + settings;
}

namespace restore_detail {

void write_recovery_files(const RestoreOptions& opts, const std::string& settings) {
  std::string auto_conf = opts.pgdata + "/postgresql.auto.conf";
  std::string existing = read_text_file(auto_conf);
  if (existing.empty()) existing = "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n";
  write_small_file(auto_conf, rewrite_auto_conf(existing, settings), 0600);
  write_small_file(opts.pgdata + "/" + (opts.standby ? "standby.signal" : "recovery.signal"), "", 0600);
}

}  // namespace restore_detail
}  // namespace pgvault
