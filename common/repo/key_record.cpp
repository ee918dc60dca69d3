// The key record (pgvault.key.json): the key check and KDF parameters that tie the configured
// encryption key to the repository (see repo.h).
#include <nlohmann/json.hpp>

#include "common/base/errors.h"
#include "common/repo/repo.h"
#include "common/repo/repo_json.h"

namespace pgvault {

using nlohmann::json;

namespace {

// The KDF parameters of an existing key record, which must match how the key is configured (a
// passphrase, or a key file).
KdfParams kdf_of_record(const json& record, bool from_passphrase, const std::string& repository,
                        const std::string& record_name) {
  KdfParams kdf;
  try {
    const json& k = record.at("kdf");
    if (from_passphrase && k.is_null()) {
      throw Error(ErrorKind::Config, "repository " + repository +
                                         " was keyed with a key file; set [encryption] key_file, not passphrase_file");
    }
    if (!from_passphrase && !k.is_null()) {
      throw Error(ErrorKind::Config, "repository " + repository +
                                         " was keyed with a passphrase; set [encryption] passphrase_file, not key_file");
    }
    if (from_passphrase) {
      kdf.salt = from_base64(k.at("salt").get<std::string>());
      const std::string malformed = record_name + ": malformed key record";
      kdf.n = repo_json::integer_field<std::uint64_t>(k, "n", malformed, "kdf");
      kdf.r = repo_json::integer_field<std::uint32_t>(k, "r", malformed, "kdf");
      kdf.p = repo_json::integer_field<std::uint32_t>(k, "p", malformed, "kdf");
    }
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Corruption, record_name + ": malformed key record (" + e.what() + ")");
  }
  return kdf;
}

// A new key record: the key check, and the KDF parameters of a passphrase key (nullptr: a key file).
json new_key_record(const std::string& check, const KdfParams* kdf) {
  json r = {{"method", "aes-256-gcm"}, {"key_check", check}, {"created", now_iso8601()}};
  if (kdf) {
    r["kdf"] = {{"name", "scrypt"}, {"salt", to_base64(kdf->salt)}, {"n", kdf->n}, {"r", kdf->r}, {"p", kdf->p}};
  } else {
    r["kdf"] = nullptr;
  }
  return r;
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
    record = repo_json::parse(read_all(*storage_, keys::key_record()), record_name);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) throw;
  }

  const bool from_passphrase = !enc.passphrase_file.empty();
  KdfParams kdf;
  if (record) {
    kdf = kdf_of_record(*record, from_passphrase, describe(), record_name);
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
    const json r = new_key_record(check, from_passphrase ? &kdf : nullptr);
    try {
      write_all(*storage_, keys::key_record(), repo_json::to_bytes(r), PutOptions{.if_absent = true, .size = {}});
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

}  // namespace pgvault
