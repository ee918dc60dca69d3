// The repository's marker (repo-init) and identity file (the database system it belongs to), and
// repo-init's summary (see repo.h).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/base/errors.h"
#include "common/base/version.h"
#include "common/repo/repo.h"
#include "common/repo/repo_json.h"

namespace pgvault {

namespace repo_json {

nlohmann::json parse(const Bytes& data, const std::string& what) {
  try {
    return nlohmann::json::parse(data.begin(), data.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Corruption, what + ": not valid JSON (" + e.what() + ")");
  }
}

Bytes to_bytes(const nlohmann::json& j) {
  std::string s = j.dump(2) + "\n";
  return Bytes(s.begin(), s.end());
}

}  // namespace repo_json

namespace {

using nlohmann::json;

Identity identity_from_json(const json& j, const std::string& what) {
  try {
    Identity id;
    const std::string malformed = what + ": malformed identity";
    id.format = repo_json::integer_field<int>(j, "format", malformed);
    id.system_identifier = repo_json::decimal_string_field(j, "system_identifier", malformed);
    id.pg_version = repo_json::integer_field<int>(j, "pg_version", malformed);
    id.wal_segment_size = repo_json::integer_field<std::uint32_t>(j, "wal_segment_size", malformed);
    id.created = j.value("created", "");
    if (id.format > kRepositoryFormat) {
      throw Error(ErrorKind::Config, what + ": repository format " + std::to_string(id.format) +
                                         " is newer than this pgvault understands (" +
                                         std::to_string(kRepositoryFormat) + "); upgrade pgvault");
    }
    return id;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, what + ": malformed identity (" + e.what() + ")");
  }
}


std::string read_marker(Storage& storage, const std::string& where) {
  json j = repo_json::parse(read_all(storage, keys::marker()), where);
  try {
    int format = repo_json::integer_field<int>(j, "format", where + ": malformed marker");
    if (format > kRepositoryFormat) {
      throw Error(ErrorKind::Config, where + ": repository format " + std::to_string(format) +
                                         " is newer than this pgvault understands (" +
                                         std::to_string(kRepositoryFormat) + "); upgrade pgvault");
    }
    return j.value("created", "");
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, where + ": malformed marker (" + e.what() + ")");
  }
}

}  // namespace

std::optional<Identity> Repository::identity() {
  if (identity_) return *identity_;
  std::optional<Identity> result;
  try {
    Bytes data = read_all(*storage_, keys::identity());
    result = identity_from_json(repo_json::parse(data, describe() + "/" + keys::identity()),
                                describe() + "/" + keys::identity());
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
  }
  identity_ = result;
  return result;
}

Identity Repository::ensure_identity(const Identity& proposed) {
  auto check = [&](const Identity& stored) {
    if (stored.system_identifier != proposed.system_identifier) {
      throw Error(ErrorKind::Foreign,
                  "WAL from database system " + std::to_string(proposed.system_identifier) +
                      " refused: repository " + describe() + " belongs to database system " +
                      std::to_string(stored.system_identifier) + " (two clusters must not share a repository)");
    }
    return stored;
  };
  if (auto existing = identity()) return check(*existing);
  json j = {
      {"format", kRepositoryFormat},
      {"system_identifier", std::to_string(proposed.system_identifier)},
      {"pg_version", proposed.pg_version},
      {"wal_segment_size", proposed.wal_segment_size},
      {"created", now_iso8601()},
  };
  try {
    write_all(*storage_, keys::identity(), repo_json::to_bytes(j), PutOptions{.if_absent = true, .size = {}});
    spdlog::info("initialised repository {} for database system {} (PostgreSQL {})", describe(),
                 proposed.system_identifier, proposed.pg_version);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Duplicate) throw;  // created concurrently: use that one
  }
  identity_.reset();
  auto stored = identity();
  if (!stored) throw Error(ErrorKind::Internal, "identity vanished after creation in " + describe());
  return check(*stored);
}

bool Repository::initialised() {
  if (!initialised_) initialised_ = identity().has_value() || storage_->head(keys::marker()).has_value();
  return initialised_;
}

void Repository::require_initialised() {
  if (initialised()) return;
  throw Error(ErrorKind::NotInitialised, "no pgvault repository at " + describe() + " (no " + keys::marker() +
                                             "): create it with repo-init, or fix [repository] in " +
                                             config_.source);
}

InitResult Repository::initialise() {
  InitResult r;
  const std::string marker_name = describe() + "/" + keys::marker();
  std::optional<std::string> existing;
  try {
    existing = read_marker(*storage_, marker_name);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
  }
  if (!existing) r.legacy = identity().has_value();
  r.key_record = init_key_record();  // first: a key that does not match the record writes nothing
  if (existing) {
    r.created = *existing;
  } else {
    r.created = now_iso8601();
    json j = {{"format", kRepositoryFormat},
              {"created", r.created},
              {"created_by", std::string("repo-init (pgvault ") + PGVAULT_VERSION + ")"}};
    try {
      write_all(*storage_, keys::marker(), repo_json::to_bytes(j), PutOptions{.if_absent = true, .size = {}});
      r.marker_created = true;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Duplicate) throw;  // a concurrent repo-init won: use its marker
      r.created = read_marker(*storage_, marker_name);
    }
  }
  initialised_ = true;
  return r;
}

std::string init_summary_text(const std::string& where, const InitResult& r) {
  std::string key;
  if (r.key_record == "created") key = "; key check " + keys::key_record() + " created";
  else if (r.key_record == "verified") key = "; the configured key matches " + keys::key_record();
  else if (r.key_record == "unchecked") key = "; " + keys::key_record() + " present, no key configured to check";
  if (r.marker_created && r.legacy) {
    return "repository " + where + " (created by an older pgvault) now has its marker " + keys::marker() + key +
           "\n";
  }
  if (r.marker_created) {
    return "initialised repository " + where + " (" + keys::marker() + ")" + key +
           "; the first wal-push records the database system\n";
  }
  return "repository " + where + " is already initialised (since " + r.created + ")" + key +
         (r.changed() ? "" : "; nothing changed") + "\n";
}

std::string init_summary_json(const std::string& where, const InitResult& r) {
  json j = {{"repository", where},           {"marker", keys::marker()},
            {"marker_created", r.marker_created}, {"legacy", r.legacy},
            {"created", r.created},          {"key_record", r.key_record},
            {"changed", r.changed()}};
  return j.dump(2) + "\n";
}

}  // namespace pgvault
