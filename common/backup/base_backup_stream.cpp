#include "common/backup/base_backup_stream.h"

#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <optional>

#include "common/backup/interrupt.h"
#include "common/base/errors.h"
#include "common/pg/wal.h"

namespace pgvault {

namespace {

using OidByLocation = std::map<std::string, std::uint32_t>;

// A string literal for a replication command.
std::string sql_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else out += c;
  }
  return out + "'";
}

std::uint64_t read_be64(std::string_view p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

std::pair<std::uint64_t, std::uint32_t> lsn_result(PGresult* r, std::string_view what) {
  if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) < 2) {
    throw Error(ErrorKind::Transient, std::string(what) + ": unexpected result from BASE_BACKUP");
  }
  std::uint64_t lsn = parse_lsn(PQgetvalue(r, 0, 0), what);
  std::uint32_t tli = 0;
  try {
    tli = static_cast<std::uint32_t>(std::stoul(PQgetvalue(r, 0, 1)));
  } catch (const std::exception&) {
    throw Error(ErrorKind::Transient, std::string(what) + ": unexpected timeline from BASE_BACKUP");
  }
  return {lsn, tli};
}

void send_base_backup(ReplicationConnection& conn, const std::string& label, const std::string& checkpoint,
                      Progress& progress, bool incremental) {
  std::string cmd = "BASE_BACKUP ( LABEL " + sql_quote("pgvault " + label) + ", PROGRESS, CHECKPOINT " +
                    sql_quote(checkpoint) + ", WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP, " +
                    (incremental ? "INCREMENTAL, " : "") + "TARGET 'client' )";
  spdlog::debug("{}", cmd);
  progress.set_phase(checkpoint == "fast" ? "waiting for checkpoint" : "waiting for a spread checkpoint");
  conn.send(cmd);
}

// The tablespace list: the tablespaces into m, the estimated total size into the progress line.
OidByLocation read_tablespaces(ReplicationConnection& conn, BackupManifest& m, Progress& progress) {
  PgResult tbs = conn.next_result("BASE_BACKUP");
  if (!tbs || PQresultStatus(tbs.get()) != PGRES_TUPLES_OK || PQnfields(tbs.get()) < 3) {
    throw Error(ErrorKind::Transient, "BASE_BACKUP: unexpected tablespace list");
  }
  std::uint64_t total = 0;
  OidByLocation oid_by_location;
  for (int i = 0; i < PQntuples(tbs.get()); ++i) {
    if (!PQgetisnull(tbs.get(), i, 2)) total += std::stoull(PQgetvalue(tbs.get(), i, 2)) * 1024;
    if (PQgetisnull(tbs.get(), i, 0)) continue;  // the data directory
    ManifestTablespace t;
    t.oid = static_cast<std::uint32_t>(std::stoul(PQgetvalue(tbs.get(), i, 0)));
    t.location = PQgetvalue(tbs.get(), i, 1);
    oid_by_location[t.location] = t.oid;
    m.tablespaces.push_back(t);
  }
  progress.set_total(total);
  return oid_by_location;
}

void await_copy(ReplicationConnection& conn) {
  PgResult copy = conn.next_result("BASE_BACKUP");
  while (copy && PQresultStatus(copy.get()) == PGRES_COMMAND_OK) copy = conn.next_result("BASE_BACKUP");
  if (!copy || PQresultStatus(copy.get()) != PGRES_COPY_OUT) {
    throw Error(ErrorKind::Transient, "BASE_BACKUP: the server did not start the data stream");
  }
}

// The CopyData messages: 'n' a new archive, 'd' data (of the archive, or of the manifest after 'm'),
// 'p' progress.
class StreamReader {
 public:
  StreamReader(const OidByLocation& oids, TarReceiver& receiver, Progress& progress)
      : oids_(oids), receiver_(receiver), progress_(progress) {}

  void message(std::string_view msg) {
    if (msg.empty()) return;
    std::string_view payload = msg.substr(1);
    switch (msg[0]) {
      case 'n': new_archive(payload); break;
      case 'd':
        if (in_manifest_) {
          manifest_.append(payload);
        } else {
          if (!parser_) throw Error(ErrorKind::Transient, "BASE_BACKUP: data before the first archive");
          parser_->feed(as_bytes(payload));
        }
        break;
      case 'p':
        if (payload.size() >= 8) progress_.set_done(read_be64(payload));
        break;
      case 'm':
        end_archive();
        in_manifest_ = true;
        break;
      default:
        throw Error(ErrorKind::Transient, std::string("BASE_BACKUP: unexpected message type '") + msg[0] + "'");
    }
    progress_.tick();
  }
  void end_archive() {
    if (parser_) parser_->finish();
    parser_.reset();
  }
  std::string take_manifest() { return std::move(manifest_); }

 private:
  // Payload: the archive's name, then the tablespace's path ("" for the data directory), each NUL-ended.
  void new_archive(std::string_view payload) {
    if (parser_) parser_->finish();
    auto nul = payload.find('\0');
    if (nul == std::string_view::npos) throw Error(ErrorKind::Transient, "BASE_BACKUP: malformed archive header");
    std::string name(payload.substr(0, nul));
    std::string_view rest = payload.substr(nul + 1);
    std::string path(rest.substr(0, rest.find('\0')));
    std::uint32_t oid = 0;
    if (!path.empty()) {
      auto it = oids_.find(path);
      if (it == oids_.end()) {
        throw Error(ErrorKind::Transient, "BASE_BACKUP: archive " + name + " for unknown tablespace " + path);
      }
      oid = it->second;
    }
    spdlog::debug("receiving archive {} (tablespace {})", name, oid ? std::to_string(oid) : "data directory");
    receiver_.start_archive(oid, name);
    parser_ = std::make_unique<TarParser>(receiver_, name);
  }

  const OidByLocation& oids_;
  TarReceiver& receiver_;
  Progress& progress_;
  std::unique_ptr<TarParser> parser_;
  std::string manifest_;
  bool in_manifest_ = false;
};

std::pair<std::uint64_t, std::uint32_t> read_stop_position(ReplicationConnection& conn) {
  std::optional<std::pair<std::uint64_t, std::uint32_t>> stop;
  while (PgResult r = conn.next_result("BASE_BACKUP")) {
    if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && !stop) stop = lsn_result(r.get(), "backup stop position");
  }
  if (!stop) throw Error(ErrorKind::Transient, "BASE_BACKUP: the server sent no stop position");
  return *stop;
}

// UPLOAD_MANIFEST (incremental) and BASE_BACKUP up to the start position, the server's refusals named.
void start_base_backup(ReplicationConnection& conn, const std::string& label, const std::string& checkpoint,
                       BackupManifest& m, Progress& progress, const IncrementalRequest* incremental) {
  try {
    if (incremental) conn.copy_in("UPLOAD_MANIFEST", incremental->parent_manifest, "UPLOAD_MANIFEST");
    send_base_backup(conn, label, checkpoint, progress, incremental != nullptr);
    PgResult start = conn.next_result("BASE_BACKUP");
    std::tie(m.start_lsn, m.timeline) = lsn_result(start.get(), "backup start position");
  } catch (const Error& e) {
    if (!incremental || e.kind() == ErrorKind::Interrupted) throw;
    throw Error(e.kind(), "the server refused an incremental backup on parent " + incremental->parent_label + ": " +
                              e.what() + " (take a full backup with --type full)");
  }
}

}  // namespace

StreamedBackup stream_base_backup(ReplicationConnection& conn, const std::string& label, const std::string& checkpoint,
                                  BackupManifest& m, TarReceiver& receiver, Progress& progress,
                                  const IncrementalRequest* incremental) {
  start_base_backup(conn, label, checkpoint, m, progress, incremental);
  const OidByLocation oids = read_tablespaces(conn, m, progress);
  await_copy(conn);
  progress.set_phase("");

  StreamReader reader(oids, receiver, progress);
  std::string_view msg;
  while (conn.copy_data(msg)) {
    check_interrupt();
    reader.message(msg);
  }
  reader.end_archive();
  StreamedBackup out;
  std::tie(out.stop_lsn, out.stop_timeline) = read_stop_position(conn);
  out.server_manifest = reader.take_manifest();
  return out;
}

}  // namespace pgvault
