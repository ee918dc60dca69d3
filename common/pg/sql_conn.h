// A plain (non-replication) libpq connection for short queries: the restore drill's checks
// (common/drill/). One query at a time, blocking, with the connect_timeout of the conninfo.
//
// Errors (ErrorKind): Transient when the connection fails or a query fails (the message names the
// database and the server's one-line message), Auth when authentication is refused.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/pg/pgconn.h"

namespace pgvault {

class SqlConnection {
 public:
  // `params`: libpq keywords and values (host, port, dbname, user, connect_timeout, ...).
  explicit SqlConnection(const std::map<std::string, std::string>& params);
  ~SqlConnection();
  SqlConnection(const SqlConnection&) = delete;
  SqlConnection& operator=(const SqlConnection&) = delete;

  // Every row of the query's result, each as its column values (NULL reads as "").
  std::vector<std::vector<std::string>> rows(const std::string& sql);
  // The first column of the first row; Transient when the result has no row.
  std::string value(const std::string& sql);
  // `name` quoted as an SQL identifier ("schema", "my table").
  std::string quote_identifier(const std::string& name);

 private:
  PGconn* conn_ = nullptr;
  std::string what_;  // "database <name>" for messages
};

}  // namespace pgvault
