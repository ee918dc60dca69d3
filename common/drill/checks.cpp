// The drill's checks against the restored server (drill.h step 4).
#include <fstream>
#include <sstream>

#include "common/drill/checks.h"
#include "common/pg/sql_conn.h"

namespace pgvault::drill_detail {

namespace {

// Runs `body`, recording its result as check `name`: ok with the detail it returns, or failed with
// the error's message.
template <typename Body>
void record(std::vector<DrillCheckResult>& out, const std::string& name, Body body) {
  check_interrupt();
  try {
    out.push_back({name, true, body()});
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Interrupted) throw;
    out.push_back({name, false, e.what()});
  }
}

void database_checks(Server& server, std::vector<DrillCheckResult>& out) {
  std::vector<std::vector<std::string>> dbs;
  record(out, "list databases", [&] {
    SqlConnection c(server.conninfo("template1"));
    dbs = c.rows("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname");
    return std::to_string(dbs.size()) + " databases allow connections";
  });
  for (const auto& row : dbs) {
    const std::string& db = row.at(0);
    record(out, "database " + db, [&] {
      SqlConnection c(server.conninfo(db));
      std::string n = c.value("SELECT count(*) FROM pg_catalog.pg_class");
      return "connects; pg_class has " + n + " rows";
    });
  }
}

void count_checks(Server& server, const std::vector<CountSpec>& counts, std::vector<DrillCheckResult>& out) {
  for (const auto& spec : counts) {
    record(out, "count " + spec.name(), [&] {
      SqlConnection c(server.conninfo(spec.database));
      return c.value("SELECT count(*) FROM " + c.quote_identifier(spec.schema) + "." +
                     c.quote_identifier(spec.table));
    });
  }
}

std::string read_sql_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::InvalidInput, "cannot read sql file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void sql_checks(Server& server, const DrillOptions& opts, const std::vector<std::string>& statements,
                std::vector<DrillCheckResult>& out) {
  for (std::size_t i = 0; i < statements.size(); ++i) {
    const std::string& q = statements[i];
    record(out, "sql #" + std::to_string(i + 1), [&]() -> std::string {
      SqlConnection c(server.conninfo(opts.sql_database));
      std::string v = c.value(q);
      if (v != "t") throw Error(ErrorKind::Corruption, "returned " + (v.empty() ? "null" : v) + ", not true: " + q);
      return q;
    });
  }
}

}  // namespace

std::vector<std::string> load_sql_checks(const DrillOptions& opts) {
  if (opts.sql_file.empty()) return {};
  std::vector<std::string> statements = split_sql(read_sql_file(opts.sql_file));
  if (statements.empty()) throw Error(ErrorKind::InvalidInput, "sql file " + opts.sql_file + " holds no query");
  return statements;
}

std::vector<DrillCheckResult> run_checks(Server& server, const DrillOptions& opts, const std::vector<std::string>& sql) {
  std::vector<DrillCheckResult> out;
  database_checks(server, out);
  count_checks(server, opts.counts, out);
  sql_checks(server, opts, sql, out);
  return out;
}

}  // namespace pgvault::drill_detail
