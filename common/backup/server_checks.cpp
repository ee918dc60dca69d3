#include "common/backup/server_checks.h"

#include <spdlog/spdlog.h>

#include "common/backup/backup.h"
#include "common/base/errors.h"
#include "common/pg/wal.h"

namespace pgvault {

namespace {

void check_version(ReplicationConnection& conn, const ServerFacts& s) {
  if (s.version < 150000) {
    throw Error(ErrorKind::Config, conn.describe() + " runs PostgreSQL " + s.version_text +
                                       "; base-push needs PostgreSQL 15 or newer");
  }
}

void check_archiving(ReplicationConnection& conn) {
  std::string wal_level = conn.show("wal_level");
  if (wal_level == "minimal") {
    throw Error(ErrorKind::Config, conn.describe() + " has wal_level = minimal; a base backup needs replica or logical");
  }
  std::string archive_mode = conn.show("archive_mode");
  if (archive_mode == "off") {
    throw Error(ErrorKind::Config, conn.describe() +
                                       " has archive_mode = off: base-push relies on the WAL archive "
                                       "(HINT: set archive_mode = on and archive_command = 'wal-push %p', then restart)");
  }
  // archive_mode on with neither archive_command nor archive_library: nothing is ever archived, so the
  // stop segment would never arrive. (Skipped if the role may not read the settings.)
  bool archives_nothing = false;
  try {
    archives_nothing = conn.show("archive_command").empty() && conn.show("archive_library").empty();
  } catch (const Error& e) {
    spdlog::debug("cannot read archive_command: {}", e.what());
  }
  if (archives_nothing) {
    throw Error(ErrorKind::Config, conn.describe() +
                                       " archives nothing (archive_command and archive_library are empty): "
                                       "base-push relies on the WAL archive (HINT: archive_command = 'wal-push %p')");
  }
}

}  // namespace

ServerFacts check_server(ReplicationConnection& conn) {
  ServerFacts s;
  s.version = conn.server_version();
  s.version_text = std::to_string(s.version / 10000) + "." + std::to_string(s.version % 10000);
  check_version(conn, s);
  s.system = conn.identify_system();
  check_archiving(conn);
  s.segment_size = static_cast<std::uint32_t>(parse_pg_size(conn.show("wal_segment_size")));
  if (!valid_segment_size(s.segment_size)) {
    throw Error(ErrorKind::Transient, "server reports an invalid wal_segment_size " + std::to_string(s.segment_size));
  }
  return s;
}

void check_repository_identity(Repository& repo, const ServerFacts& server) {
  const std::uint64_t sysid = server.system.system_identifier;
  if (auto existing = repo.identity(); existing && existing->system_identifier != sysid) {
    throw Error(ErrorKind::Foreign, "base backup of database system " + std::to_string(sysid) +
                                        " refused: repository " + repo.describe() + " belongs to database system " +
                                        std::to_string(existing->system_identifier) +
                                        " (two clusters must not share a repository)");
  }
  Identity proposed;
  proposed.system_identifier = sysid;
  proposed.pg_version = server.version / 10000;
  proposed.wal_segment_size = server.segment_size;
  Identity ident = repo.ensure_identity(proposed);
  if (ident.wal_segment_size != server.segment_size) {
    throw Error(ErrorKind::Config, "repository " + repo.describe() + " records WAL segments of " +
                                       std::to_string(ident.wal_segment_size) + " bytes but the server uses " +
                                       std::to_string(server.segment_size));
  }
}

std::uint64_t parse_pg_size(const std::string& text) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') v = v * 10 + (text[i++] - '0');
  std::string unit = text.substr(i);
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "kB") mult = 1024;
  else if (unit == "MB") mult = 1024 * 1024;
  else if (unit == "GB") mult = 1024ull * 1024 * 1024;
  if (i == 0 || mult == 0) throw Error(ErrorKind::InvalidInput, "unexpected size \"" + text + "\" from the server");
  return v * mult;
}

}  // namespace pgvault
