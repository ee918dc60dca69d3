// A libpq connection to PostgreSQL in physical replication mode (replication=true), as pg_basebackup
// opens it: the replication commands IDENTIFY_SYSTEM, SHOW and BASE_BACKUP, with every wait
// interruptible.
//
// Errors (ErrorKind):
//   Transient  server unreachable or down (TCP or Unix socket alike), connection lost, server shutting
//              down, any server-side failure
//   Auth       authentication refused (password, pg_hba.conf)
//   Config     the role lacks the REPLICATION attribute; the server accepts no replication connections
//              (max_wal_senders = 0, e.g. because wal_level = minimal); a connection string libpq
//              cannot parse or whose values it refuses ("bad connection string")
//   and whatever the `check` callback throws (Interrupted).
// Messages never contain the password (libpq's messages do not).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/errors.h"

namespace pgvault {

struct PgResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// Called at least every 200 ms while waiting for the server; throws to abandon the wait.
using CheckInterrupt = std::function<void()>;

struct SystemInfo {
  std::uint64_t system_identifier = 0;
  std::uint32_t timeline = 0;
  std::uint64_t xlogpos = 0;
};

class ReplicationConnection {
 public:
  // `conninfo`: libpq keyword/value string or URI (may be empty: PG* environment variables and
  // defaults apply); replication=true is forced. A connect_timeout of 30 s applies unless the
  // conninfo or PGCONNECT_TIMEOUT sets one.
  ReplicationConnection(const std::string& conninfo, const CheckInterrupt& check);
  ~ReplicationConnection();
  ReplicationConnection(const ReplicationConnection&) = delete;
  ReplicationConnection& operator=(const ReplicationConnection&) = delete;

  int server_version() const;        // e.g. 150004
  std::string describe() const;      // "host:port user" for messages
  SystemInfo identify_system();
  std::string show(const std::string& name);

  // Sends a command; then next_result() until it returns nullptr (or a COPY_OUT result).
  void send(const std::string& command);
  // The next result (nullptr when the command is complete). Throws for PGRES_FATAL_ERROR, naming
  // `what`, with the kind from the SQLSTATE.
  PgResult next_result(std::string_view what);
  // During COPY OUT: the next CopyData message in `out` (valid until the next call); false at the end
  // of the COPY.
  bool copy_data(std::string_view& out);
  // Runs a command that answers with COPY IN (UPLOAD_MANIFEST): sends `data` as CopyData, ends the copy
  // and reads the command's results to its end. Throws as next_result() does, naming `what`.
  void copy_in(const std::string& command, std::string_view data, std::string_view what);

  // Asks the server to cancel the running command and closes the connection (the server then aborts
  // a running backup). Safe to call twice; no-throw.
  void abort() noexcept;

 private:
  void wait_readable();
  std::string error_message() const;
  PGconn* conn_ = nullptr;
  CheckInterrupt check_;
  char* copy_buf_ = nullptr;
};

// The error kind for a server error's SQLSTATE: "28xxx" (authorization) -> Auth; "42501" (insufficient
// privilege), "55000" (object not in prerequisite state, e.g. wal_level too low) and "22023"/"42xxx"
// (bad parameters) -> Config; everything else (including a missing SQLSTATE) -> Transient.
ErrorKind kind_for_sqlstate(const char* sqlstate);

}  // namespace pgvault
