#include "common/pg/pgconn.h"

#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/pg/wal.h"

namespace pgvault {

namespace {

// libpq messages end with a newline and may span lines ("connection to server ... failed: FATAL:  ...",
// "\tIs the server running ..."): one line, runs of blanks collapsed.
std::string one_line(const std::string& s) {
  std::string out;
  bool blank = false;
  for (char c : s) {
    if (c == '\n') {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      if (!out.empty()) out += ";";
      blank = true;
    } else if (c == ' ' || c == '\t') {
      blank = true;
    } else {
      if (blank && !out.empty()) out += ' ';
      blank = false;
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ';' || out.back() == ' ')) out.pop_back();
  return out;
}

bool contains(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

// True when libpq's message reports a failed connection attempt (server down, refused, unreachable,
// unknown host name) rather than an unusable connection string. libpq tries a Unix socket at once, in
// PQconnectStart, so a server that is down there fails before any polling, as a bad option does.
bool is_connection_attempt_failure(const std::string& msg) {
  return contains(msg, "connection to server") || contains(msg, "could not connect to server") ||
         contains(msg, "could not translate host name") || contains(msg, "could not create socket");
}

// The kind of a failed connection (and a hint for the message).
ErrorKind connect_failure_kind(const std::string& msg, bool needs_password, std::string& hint) {
  if (needs_password || contains(msg, "authentication failed") || contains(msg, "pg_hba.conf") ||
      contains(msg, "no password supplied") || (contains(msg, "role \"") && contains(msg, "does not exist"))) {
    return ErrorKind::Auth;
  }
  if (contains(msg, "must be superuser or replication role") || contains(msg, "permission denied to start WAL sender") ||
      contains(msg, "REPLICATION attribute")) {
    hint = " (HINT: the role needs the REPLICATION attribute: ALTER ROLE ... REPLICATION)";
    return ErrorKind::Config;
  }
  if (contains(msg, "max_wal_senders") || contains(msg, "number of requested standby connections")) {
    hint = " (HINT: the server accepts no replication connection: set max_wal_senders > 0, which needs "
           "wal_level = replica or logical)";
    return ErrorKind::Config;
  }
  return ErrorKind::Transient;  // down, refused, unreachable, shutting down: whatever the transport
}

[[noreturn]] void throw_connect_failure(const std::string& msg, bool needs_password) {
  std::string hint;
  ErrorKind kind = connect_failure_kind(msg, needs_password, hint);
  throw Error(kind, "cannot connect to PostgreSQL for a base backup: " + msg + hint);
}

// A connection string libpq cannot parse (syntax, unknown keyword) is a Config error. (A value with no
// '=' that is not a URI is a database name, as libpq's expand_dbname reads it.)
void check_conninfo_syntax(const std::string& conninfo) {
  const bool uri = conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
  if (!uri && conninfo.find('=') == std::string::npos) return;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts) {
    PQconninfoFree(opts);
    return;
  }
  std::string msg = err ? one_line(err) : "out of memory";
  if (err) PQfreemem(err);
  throw Error(ErrorKind::Config, "bad connection string: " + msg);
}

}  // namespace

ErrorKind kind_for_sqlstate(const char* sqlstate) {
  if (!sqlstate) return ErrorKind::Transient;
  std::string_view s(sqlstate);
  if (s.rfind("28", 0) == 0) return ErrorKind::Auth;
  if (s == "42501" || s == "55000" || s == "22023" || s.rfind("42", 0) == 0) return ErrorKind::Config;
  return ErrorKind::Transient;
}

ReplicationConnection::ReplicationConnection(const std::string& conninfo, const CheckInterrupt& check)
    : check_(check) {
  check_conninfo_syntax(conninfo);
  std::vector<const char*> keywords, values;
  if (!std::getenv("PGCONNECT_TIMEOUT")) {
    keywords.push_back("connect_timeout");
    values.push_back("30");
  }
  // expand_dbname: `conninfo` (a keyword/value string or URI) is expanded in place of dbname; keywords
  // after it override it, so replication mode is always on.
  keywords.push_back("dbname");
  values.push_back(conninfo.c_str());
  keywords.push_back("replication");
  values.push_back("true");
  keywords.push_back("fallback_application_name");
  values.push_back("pgvault base-push");
  keywords.push_back(nullptr);
  values.push_back(nullptr);

  conn_ = PQconnectStartParams(keywords.data(), values.data(), 1);
  if (!conn_) throw Error(ErrorKind::Internal, "libpq could not allocate a connection");
  if (PQstatus(conn_) == CONNECTION_BAD) {
    std::string msg = error_message();
    bool needs_password = PQconnectionNeedsPassword(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    if (is_connection_attempt_failure(msg)) throw_connect_failure(msg, needs_password);
    throw Error(ErrorKind::Config, "bad connection string: " + msg);
  }
  for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;;) {
    if (st == PGRES_POLLING_OK || st == PGRES_POLLING_FAILED) break;
    pollfd pfd{PQsocket(conn_), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    int rc = pfd.fd >= 0 ? ::poll(&pfd, 1, 200) : 1;
    try {
      check_();
    } catch (...) {
      PQfinish(conn_);
      conn_ = nullptr;
      throw;
    }
    if (rc == 0 || (rc < 0 && errno == EINTR)) continue;
    st = PQconnectPoll(conn_);
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = error_message();
    bool needs_password = PQconnectionNeedsPassword(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    throw_connect_failure(msg, needs_password);
  }
}

ReplicationConnection::~ReplicationConnection() { abort(); }

void ReplicationConnection::abort() noexcept {
  if (copy_buf_) {
    PQfreemem(copy_buf_);
    copy_buf_ = nullptr;
  }
  if (!conn_) return;
  if (PQtransactionStatus(conn_) == PQTRANS_ACTIVE) {
    if (PGcancel* c = PQgetCancel(conn_)) {
      char err[256];
      (void)PQcancel(c, err, sizeof err);
      PQfreeCancel(c);
    }
  }
  PQfinish(conn_);
  conn_ = nullptr;
}

int ReplicationConnection::server_version() const { return conn_ ? PQserverVersion(conn_) : 0; }

std::string ReplicationConnection::describe() const {
  if (!conn_) return "(closed)";
  std::string host = PQhost(conn_) ? PQhost(conn_) : "";
  return "server " + host + ":" + (PQport(conn_) ? PQport(conn_) : "") + " as " + (PQuser(conn_) ? PQuser(conn_) : "");
}

std::string ReplicationConnection::error_message() const {
  return conn_ ? one_line(PQerrorMessage(conn_)) : "connection closed";
}

void ReplicationConnection::wait_readable() {
  pollfd pfd{PQsocket(conn_), POLLIN, 0};
  if (pfd.fd < 0) throw Error(ErrorKind::Transient, "connection to PostgreSQL lost: " + error_message());
  int rc = ::poll(&pfd, 1, 200);
  check_();
  if (rc < 0 && errno != EINTR) throw errno_error("poll on the PostgreSQL connection", errno);
  if (rc > 0 && !PQconsumeInput(conn_)) {
    throw Error(ErrorKind::Transient, "connection to PostgreSQL lost: " + error_message());
  }
}

void ReplicationConnection::send(const std::string& command) {
  if (!conn_) throw Error(ErrorKind::Internal, "send on a closed connection");
  if (!PQsendQuery(conn_, command.c_str())) {
    throw Error(ErrorKind::Transient, "cannot send " + command.substr(0, command.find(' ')) + ": " + error_message());
  }
}

PgResult ReplicationConnection::next_result(std::string_view what) {
  while (PQisBusy(conn_)) wait_readable();
  PgResult r(PQgetResult(conn_));
  if (r && PQresultStatus(r.get()) == PGRES_FATAL_ERROR) {
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    std::string msg = one_line(PQresultErrorMessage(r.get()));
    const char* hint = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_HINT);
    if (hint && !contains(msg, hint)) msg += " (HINT: " + std::string(hint) + ")";
    ErrorKind kind = kind_for_sqlstate(state);
    r.reset();
    // Drain what remains of this command so the connection can take the next one.
    try {
      for (;;) {
        while (PQisBusy(conn_)) wait_readable();
        PgResult rest(PQgetResult(conn_));
        if (!rest) break;
      }
    } catch (const Error&) {
    }
    throw Error(kind, std::string(what) + " failed on the server: " + msg);
  }
  return r;
}

void ReplicationConnection::copy_in(const std::string& command, std::string_view data, std::string_view what) {
  send(command);
  PgResult r = next_result(what);
  if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) {
    throw Error(ErrorKind::Transient, std::string(what) + ": the server did not start the upload");
  }
  constexpr std::size_t kPiece = 64 * 1024;
  for (std::size_t pos = 0; pos < data.size(); pos += kPiece) {
    std::string_view piece = data.substr(pos, kPiece);
    if (PQputCopyData(conn_, piece.data(), static_cast<int>(piece.size())) != 1) {
      throw Error(ErrorKind::Transient, std::string(what) + ": sending failed: " + error_message());
    }
    check_();
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) {
    throw Error(ErrorKind::Transient, std::string(what) + ": ending the upload failed: " + error_message());
  }
  while (PQflush(conn_) == 1) wait_readable();
  while (next_result(what)) {
  }
}

bool ReplicationConnection::copy_data(std::string_view& out) {
  if (copy_buf_) {
    PQfreemem(copy_buf_);
    copy_buf_ = nullptr;
  }
  for (;;) {
    int n = PQgetCopyData(conn_, &copy_buf_, 1);
    if (n > 0) {
      out = std::string_view(copy_buf_, static_cast<std::size_t>(n));
      return true;
    }
    if (n == -1) return false;
    if (n == -2) throw Error(ErrorKind::Transient, "base backup stream failed: " + error_message());
    wait_readable();
  }
}

SystemInfo ReplicationConnection::identify_system() {
  send("IDENTIFY_SYSTEM");
  PgResult r = next_result("IDENTIFY_SYSTEM");
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1 || PQnfields(r.get()) < 3) {
    throw Error(ErrorKind::Transient, "IDENTIFY_SYSTEM returned an unexpected result");
  }
  SystemInfo info;
  try {
    info.system_identifier = std::stoull(PQgetvalue(r.get(), 0, 0));
    info.timeline = static_cast<std::uint32_t>(std::stoul(PQgetvalue(r.get(), 0, 1)));
  } catch (const std::exception&) {
    throw Error(ErrorKind::Transient, "IDENTIFY_SYSTEM returned an unexpected system identifier or timeline");
  }
  info.xlogpos = parse_lsn(PQgetvalue(r.get(), 0, 2), "IDENTIFY_SYSTEM xlogpos");
  while (next_result("IDENTIFY_SYSTEM")) {
  }
  return info;
}

std::string ReplicationConnection::show(const std::string& name) {
  send("SHOW " + name);
  PgResult r = next_result("SHOW " + name);
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
    throw Error(ErrorKind::Transient, "SHOW " + name + " returned an unexpected result");
  }
  std::string v = PQgetvalue(r.get(), 0, 0);
  while (next_result("SHOW " + name)) {
  }
  return v;
}

}  // namespace pgvault
