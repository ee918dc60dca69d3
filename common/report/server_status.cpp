#include "common/report/server_status.h"

#include <libpq-fe.h>

#include <memory>

#include "common/pg/pgconn.h"

namespace pgvault {

namespace {

struct ConnCloser {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;

std::string one_line(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& ch : s) {
    if (ch == '\n') ch = ' ';
  }
  return s;
}

std::optional<std::int64_t> field_int(PGresult* r, int col) {
  if (PQgetisnull(r, 0, col)) return std::nullopt;
  return std::stoll(PQgetvalue(r, 0, col));
}

std::string field_text(PGresult* r, int col) { return PQgetisnull(r, 0, col) ? "" : PQgetvalue(r, 0, col); }

// A one-row query; nullptr (and `error` set) when it fails.
PgResult query_row(PGconn* c, const char* sql, std::string& error) {
  PgResult r(PQexec(c, sql));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
    error = one_line(PQerrorMessage(c));
    return nullptr;
  }
  return r;
}

void read_archiver(PGconn* c, ServerStatus& s) {
  PgResult r = query_row(c,
                         "SELECT archived_count, last_archived_wal, extract(epoch FROM last_archived_time)::bigint,"
                         " failed_count, last_failed_wal, extract(epoch FROM last_failed_time)::bigint"
                         " FROM pg_stat_archiver",
                         s.error);
  if (!r) return;
  s.connected = true;
  s.archived_count = field_int(r.get(), 0).value_or(0);
  s.last_archived_wal = field_text(r.get(), 1);
  s.last_archived_time = field_int(r.get(), 2);
  s.failed_count = field_int(r.get(), 3).value_or(0);
  s.last_failed_wal = field_text(r.get(), 4);
  s.last_failed_time = field_int(r.get(), 5);
}

void read_ready(PGconn* c, ServerStatus& s) {
  PgResult r = query_row(c,
                         "SELECT count(*), extract(epoch FROM min(modification))::bigint"
                         " FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
                         s.ready_error);
  if (!r) return;
  s.ready_count = field_int(r.get(), 0);
  s.oldest_ready_time = field_int(r.get(), 1);
}

}  // namespace

ServerStatus read_server_status(const std::string& conninfo) {
  ServerStatus s;
  const char* keys[] = {"connect_timeout", "dbname", "application_name", nullptr};
  const char* values[] = {"10", conninfo.c_str(), "pgvault archive-info", nullptr};
  Conn c(PQconnectdbParams(keys, values, 1));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    s.error = "cannot connect to the server: " + (c ? one_line(PQerrorMessage(c.get())) : "out of memory");
    return s;
  }
  read_archiver(c.get(), s);
  if (s.connected) read_ready(c.get(), s);
  return s;
}

}  // namespace pgvault
