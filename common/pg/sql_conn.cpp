#include "common/pg/sql_conn.h"

#include <cstring>

namespace pgvault {

namespace {

// libpq's message on one line (it ends in a newline and may span lines).
std::string flat(const char* msg) {
  std::string out;
  for (const char* p = msg; p && *p; ++p) out += (*p == '\n' || *p == '\t') ? ' ' : *p;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

SqlConnection::SqlConnection(const std::map<std::string, std::string>& params) {
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  auto db = params.find("dbname");
  what_ = "database " + (db == params.end() ? std::string("(default)") : db->second);
  conn_ = PQconnectdbParams(keys.data(), values.data(), 0);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = conn_ ? flat(PQerrorMessage(conn_)) : "out of memory";
    bool auth = msg.find("authentication failed") != std::string::npos ||
                msg.find("pg_hba.conf") != std::string::npos;
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
    throw Error(auth ? ErrorKind::Auth : ErrorKind::Transient, "cannot connect to " + what_ + ": " + msg);
  }
}

SqlConnection::~SqlConnection() {
  if (conn_) PQfinish(conn_);
}

std::vector<std::vector<std::string>> SqlConnection::rows(const std::string& sql) {
  PgResult res(PQexec(conn_, sql.c_str()));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    throw Error(ErrorKind::Transient, "query failed in " + what_ + ": " + flat(PQerrorMessage(conn_)));
  }
  std::vector<std::vector<std::string>> out;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    std::vector<std::string> row;
    for (int c = 0; c < PQnfields(res.get()); ++c) row.emplace_back(PQgetvalue(res.get(), r, c));
    out.push_back(std::move(row));
  }
  return out;
}

std::string SqlConnection::value(const std::string& sql) {
  auto r = rows(sql);
  if (r.empty() || r.front().empty()) throw Error(ErrorKind::Transient, "query returned no row in " + what_);
  return r.front().front();
}

std::string SqlConnection::quote_identifier(const std::string& name) {
  char* q = PQescapeIdentifier(conn_, name.c_str(), name.size());
  if (!q) throw Error(ErrorKind::InvalidInput, "cannot quote identifier " + name + ": " + flat(PQerrorMessage(conn_)));
  std::string out(q);
  PQfreemem(q);
  return out;
}

}  // namespace pgvault
