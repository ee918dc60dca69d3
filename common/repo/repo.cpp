#include "common/repo/repo.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "common/base/errors.h"
#include "common/base/format.h"
#include "common/base/version.h"

namespace pgvault {

namespace keys {
std::string marker() { return "pgvault.repo.json"; }
std::string identity() { return "pgvault.json"; }
std::string key_record() { return "pgvault.key.json"; }
std::string wal_prefix() { return "wal/"; }
std::string wal(const WalFileName& name) {
  if (name.kind == WalFileKind::History) return "wal/" + name.name;
  return "wal/" + name.name.substr(0, 16) + "/" + name.name;
}
std::string backups_prefix() { return "backups/"; }
std::string backup_prefix(const std::string& label) { return "backups/" + label + "/"; }
std::string backup_manifest(const std::string& label) { return backup_prefix(label) + "manifest.json"; }
std::string backup_bundle(const std::string& label, std::uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "bundle-%06llu", static_cast<unsigned long long>(index));
  return backup_prefix(label) + buf;
}
std::string backup_claim(const std::string& label) { return backup_prefix(label) + "claim"; }
std::string lock(const std::string& name) { return "locks/" + name; }
}  // namespace keys

std::string now_iso8601() { return format_utc(static_cast<std::int64_t>(std::time(nullptr))); }

namespace {

using nlohmann::json;

json parse_json(const Bytes& data, const std::string& what) {
  try {
    return json::parse(data.begin(), data.end());
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, what + ": not valid JSON (" + e.what() + ")");
  }
}

Identity identity_from_json(const json& j, const std::string& what) {
  try {
    Identity id;
    id.format = j.at("format").get<int>();
    id.system_identifier = std::stoull(j.at("system_identifier").get<std::string>());
    id.pg_version = j.at("pg_version").get<int>();
    id.wal_segment_size = j.at("wal_segment_size").get<std::uint32_t>();
    id.created = j.value("created", "");
    if (id.format > kRepositoryFormat) {
      throw Error(ErrorKind::Config, what + ": repository format " + std::to_string(id.format) +
                                         " is newer than this pgvault understands (" +
                                         std::to_string(kRepositoryFormat) + "); upgrade pgvault");
    }
    return id;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, what + ": malformed identity (" + e.what() + ")");
  } catch (const std::invalid_argument&) {
    throw Error(ErrorKind::Corruption, what + ": malformed system_identifier");
  } catch (const std::out_of_range&) {
    throw Error(ErrorKind::Corruption, what + ": malformed system_identifier");
  }
}

Bytes to_bytes(const json& j) {
  std::string s = j.dump(2) + "\n";
  return Bytes(s.begin(), s.end());
}

}  // namespace

Repository::Repository(std::unique_ptr<Storage> storage, Config config)
    : storage_(std::move(storage)), config_(std::move(config)) {}

std::optional<Identity> Repository::identity() {
  if (identity_) return *identity_;
  std::optional<Identity> result;
  try {
    Bytes data = read_all(*storage_, keys::identity());
    result = identity_from_json(parse_json(data, describe() + "/" + keys::identity()),
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
    write_all(*storage_, keys::identity(), to_bytes(j), PutOptions{.if_absent = true, .size = {}});
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

namespace {

// The marker's creation time; a marker of a newer repository format is refused.
std::string read_marker(Storage& storage, const std::string& where) {
  json j = parse_json(read_all(storage, keys::marker()), where);
  try {
    int format = j.at("format").get<int>();
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

// Creates or verifies the key record; says which (see InitResult::key_record). Writes nothing when the
// configured key does not match an existing record.
std::string Repository::init_key_record() {
  const auto& enc = config_.encryption;
  const bool had_record = storage_->head(keys::key_record()).has_value();
  if (enc.key_file.empty() && enc.passphrase_file.empty()) return had_record ? "unchecked" : "none";
  if (enc.method == Encryption::None) {  // a key for reading only: checked when there is a record
    if (!had_record) return "none";
    read_key();
    return "verified";
  }
  write_key();
  return had_record ? "verified" : "created";
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
      write_all(*storage_, keys::marker(), to_bytes(j), PutOptions{.if_absent = true, .size = {}});
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

const MasterKey* Repository::read_key() { return load_key(false); }

const MasterKey* Repository::write_key() {
  if (config_.encryption.method == Encryption::None) return nullptr;
  return load_key(true);
}

const MasterKey* Repository::load_key(bool create_record) {
  const auto& enc = config_.encryption;
  if (enc.key_file.empty() && enc.passphrase_file.empty()) return nullptr;
  if (key_loaded_ && (key_verified_ || !create_record)) return key_ ? &*key_ : nullptr;

  const std::string record_name = describe() + "/" + keys::key_record();
  std::optional<json> record;
  try {
    record = parse_json(read_all(*storage_, keys::key_record()), record_name);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
  }

  KdfParams kdf;
  bool from_passphrase = !enc.passphrase_file.empty();
  if (record) {
    try {
      const json& k = record->at("kdf");
      if (from_passphrase && k.is_null()) {
        throw Error(ErrorKind::Config, "repository " + describe() +
                                           " was keyed with a key file; set [encryption] key_file, not passphrase_file");
      }
      if (!from_passphrase && !k.is_null()) {
        throw Error(ErrorKind::Config, "repository " + describe() +
                                           " was keyed with a passphrase; set [encryption] passphrase_file, not key_file");
      }
      if (from_passphrase) {
        kdf.salt = from_base64(k.at("salt").get<std::string>());
        kdf.n = k.at("n").get<std::uint64_t>();
        kdf.r = k.at("r").get<std::uint32_t>();
        kdf.p = k.at("p").get<std::uint32_t>();
      }
    } catch (const json::exception& e) {
      throw Error(ErrorKind::Corruption, record_name + ": malformed key record (" + e.what() + ")");
    }
  } else if (from_passphrase) {
    if (!create_record) {
      throw Error(ErrorKind::Auth, "repository " + describe() + " has no key record (" + keys::key_record() +
                                       "): nothing encrypted was ever written with a passphrase");
    }
    kdf = new_kdf_params();
  }

  MasterKey key = from_passphrase ? derive_key_from_passphrase(load_passphrase_file(enc.passphrase_file), kdf)
                                  : load_key_file(enc.key_file);
  std::string check = key_check(key);

  if (record) {
    if (record->value("key_check", "") != check) {
      throw Error(ErrorKind::Auth, "encryption key from " + (from_passphrase ? enc.passphrase_file : enc.key_file) +
                                       " is not the key of repository " + describe() + " (key check in " +
                                       keys::key_record() + " differs)");
    }
    key_verified_ = true;
  } else if (create_record) {
    json r = {{"method", "aes-256-gcm"}, {"key_check", check}, {"created", now_iso8601()}};
    if (from_passphrase) {
      r["kdf"] = {{"name", "scrypt"}, {"salt", to_base64(kdf.salt)}, {"n", kdf.n}, {"r", kdf.r}, {"p", kdf.p}};
    } else {
      r["kdf"] = nullptr;
    }
    try {
      write_all(*storage_, keys::key_record(), to_bytes(r), PutOptions{.if_absent = true, .size = {}});
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Duplicate) throw;
      // Another process created it first: start over and verify against theirs.
      key_loaded_ = false;
      return load_key(create_record);
    }
    key_verified_ = true;
  }
  // Without a record and without creating one (reading), nothing encrypted exists yet: the key is
  // usable but unverified; a decode failure will say so.
  key_ = key;
  key_loaded_ = true;
  return &*key_;
}

EncodeOptions Repository::encode_options() {
  EncodeOptions o;
  o.compression = config_.compression.method;
  o.level = config_.compression.level;
  o.threads = config_.compression.threads;
  if (o.threads == Config::CompressionCfg::kAutoThreads) {
    o.threads = auto_threads_;
    // 1 MiB jobs: a 16 MiB segment still splits into enough jobs for every worker, and each worker
    // buffers about two jobs, which keeps wal-push well under 32 MiB (zstd's default is 4x the window).
    if (o.threads > 0) o.job_size = 1 << 20;
  }
  o.key = write_key();
  return o;
}

Digest Repository::put_object(const std::string& key, Source& src, const PutOptions& opts) {
  EncodeOptions eo = encode_options();
  eo.bound_name = key;  // an encrypted object is bound to the key it is stored under
  auto writer = storage_->put(key, opts);
  ObjectEncoder enc(*writer, eo);
  // 256 KiB reads: several objects are encoded at once by look-ahead, and each read buffer counts.
  pump(src, enc, 256 << 10);  // finish() writes the trailer and commits the writer
  return enc.digest();
}

Digest Repository::get_object(const std::string& key, Sink& out) {
  auto src = storage_->get(key);
  ObjectDecoder dec(out, read_key(), key, describe() + "/" + key);
  pump(*src, dec);
  return dec.digest();
}

void Repository::put_bytes(const std::string& key, ByteView plaintext, const PutOptions& opts) {
  SpanSource src(plaintext);
  put_object(key, src, opts);
}

Bytes Repository::get_bytes(const std::string& key) {
  Bytes out;
  VectorSink sink(out);
  get_object(key, sink);
  return out;
}

Digest Repository::stored_digest(const std::string& key) {
  // One read of one version (size and trailer together): a HEAD then a ranged GET could pair the size
  // of one version with the trailer of a newer one while another writer replaces the object.
  ObjectTail tail = storage_->get_tail(key, kObjectTrailerSize);
  if (tail.size < kObjectHeaderSize + kObjectTrailerSize) {
    throw Error(ErrorKind::Corruption, describe() + "/" + key + ": object too small (" +
                                           std::to_string(tail.size) + " bytes)");
  }
  return parse_trailer(tail.bytes, describe() + "/" + key);
}

Digest Repository::claim_of(const std::string& key, const Digest& plain, bool keyed) {
  if (!keyed) return plain;
  const MasterKey* k = read_key();
  if (k == nullptr) {
    throw Error(ErrorKind::Auth, describe() + "/" + key +
                                     ": the stored object is encrypted but no encryption key is configured");
  }
  return keyed_claim(*k, plain, key);
}

}  // namespace pgvault
