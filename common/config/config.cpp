#include "common/config/config.h"

#include <toml++/toml.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <sstream>

#include "common/base/errors.h"
#include "common/config/config_values.h"

namespace pgvault {
namespace {

using config_detail::key_table;
using config_detail::RawValue;

constexpr const char* kDefaultConfigPath = "/etc/pgvault/pgvault.toml";

}  // namespace

void config_detail::apply_key(Config& c, const std::string& key, const RawValue& v) {
  const auto& table = key_table();
  auto it = table.find(key);
  if (it == table.end()) {
    auto dot = key.find('.');
    throw Error(ErrorKind::Config, v.where + ": unknown key " + key.substr(dot + 1) + " in [" +
                                       key.substr(0, dot) + "]");
  }
  it->second(c, v, key.substr(key.find('.') + 1));
  c.origins[key] = v.where;
}

namespace {

using config_detail::apply_key;

// Applies every section but [repositories], whose tables it returns for build_repositories.
std::vector<config_detail::RepositoryTable> apply_toml(Config& c, const toml::table& root, const std::string& origin) {
  std::vector<config_detail::RepositoryTable> tables;
  for (const auto& [section_key, section_node] : root) {
    std::string section(section_key.str());
    auto line = [&](const toml::node& n) { return origin + " line " + std::to_string(n.source().begin.line); };
    const toml::table* section_table = section_node.as_table();
    if (section == "repositories" && section_table) {
      tables = config_detail::read_repository_tables(*section_table, origin);
      continue;
    }
    if (!section_table) {
      throw Error(ErrorKind::Config, line(section_node) + ": unknown top-level key " + section +
                                         " (every key belongs to a section such as [repository])");
    }
    bool known_section = false;
    for (const auto& [k, _] : key_table()) {
      if (k.rfind(section + ".", 0) == 0) known_section = true;
    }
    if (!known_section) throw Error(ErrorKind::Config, line(section_node) + ": unknown section [" + section + "]");
    c.origins[section] = line(section_node);
    for (const auto& [key, node] : *section_table) {
      RawValue v;
      v.where = line(node);
      if (auto s = node.value<std::string>(); s && node.is_string()) v.text = *s;
      else if (node.is_integer()) v.integer = *node.value<std::int64_t>();
      else if (node.is_boolean()) v.boolean = *node.value<bool>();
      else if (node.is_floating_point()) v.text = std::to_string(*node.value<double>());
      apply_key(c, section + "." + std::string(key.str()), v);
    }
  }
  return tables;
}

}  // namespace

// Ambient AWS_* variables fill only what `explicit_keys` (set by the file or a flag) leaves unset; the
// credentials count as one setting.
void config_detail::apply_aws_env(Config& c, const std::set<std::string>& explicit_keys) {
  struct EnvKey {
    const char* env;
    const char* key;
  };
  static const char* const credentials[] = {"repository.access_key_id", "repository.secret_access_key",
                                            "repository.session_token"};
  bool explicit_credentials = false;
  for (const char* k : credentials) explicit_credentials = explicit_credentials || explicit_keys.count(k) > 0;
  auto is_credential = [&](const std::string& key) {
    for (const char* k : credentials) {
      if (key == k) return true;
    }
    return false;
  };
  static const EnvKey keys[] = {
      {"AWS_ACCESS_KEY_ID", "repository.access_key_id"},
      {"AWS_SECRET_ACCESS_KEY", "repository.secret_access_key"},
      {"AWS_SESSION_TOKEN", "repository.session_token"},
      {"AWS_DEFAULT_REGION", "repository.region"},
      {"AWS_REGION", "repository.region"},  // after AWS_DEFAULT_REGION: AWS_REGION wins
      {"AWS_ENDPOINT_URL", "repository.endpoint"},
  };
  for (const auto& e : keys) {
    const char* val = std::getenv(e.env);
    if (!val || !*val || explicit_keys.count(e.key) > 0 || (explicit_credentials && is_credential(e.key))) continue;
    apply_key(c, e.key, RawValue{std::string(val), {}, {}, std::string("environment ") + e.env});
  }
}

namespace {

// The overrides of the main sections; "repositories.NAME.KEY" ones are build_repositories' to apply.
void apply_overrides(Config& c, const ConfigOverrides& overrides) {
  for (const auto& [k, val] : overrides) {
    if (k.find('.') == std::string::npos) {
      throw Error(ErrorKind::Config, "option " + k + ": expected section.key");
    }
    if (k.starts_with("repositories.")) continue;
    apply_key(c, k, RawValue{val, {}, {}, "option " + k});
  }
}

// Where the first of `keys` that was set came from (else where the first one's section starts): the line
// a check across several keys names.
std::string at(const Config& c, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    if (c.origins.count(k) > 0) return c.origins.at(k);
  }
  return c.where(*keys.begin());
}

[[noreturn]] void invalid(const std::string& where, const std::string& what) {
  throw Error(ErrorKind::Config, where + ": " + what);
}

void validate(const Config& c) {
  config_detail::validate_repository(c, "[repository]");
  const auto& e = c.encryption;
  if (e.method != Encryption::None && e.key_file.empty() && e.passphrase_file.empty()) {
    invalid(at(c, {"encryption.method"}), "[encryption] method \"aes-256-gcm\" needs key_file or passphrase_file");
  }
  if (!e.key_file.empty() && !e.passphrase_file.empty()) {
    invalid(c.where("encryption.passphrase_file"),
            "[encryption] set key_file or passphrase_file, not both (key_file: " + c.where("encryption.key_file") + ")");
  }
}

}  // namespace

void config_detail::validate_repository(const Config& c, const std::string& section) {
  const auto& r = c.repository;
  if (r.type == "fs") {
    if (r.path.empty()) {
      invalid(at(c, {"repository.path", "repository.type"}), section + " path must be set for type \"fs\"");
    }
    if (r.path.front() != '/') {
      invalid(at(c, {"repository.path"}), section + " path must be an absolute path (got \"" + r.path + "\")");
    }
    return;
  }
  if (r.bucket.empty()) {
    invalid(at(c, {"repository.bucket", "repository.type"}), section + " bucket must be set for type \"s3\"");
  }
  const std::pair<const char*, const std::string*> credentials[] = {{"access_key_id", &r.access_key_id},
                                                                     {"secret_access_key", &r.secret_access_key}};
  for (const auto& [name, value] : credentials) {
    if (!value->empty()) continue;
    const std::string key = std::string("repository.") + name;
    invalid(at(c, {key.c_str(), "repository.type"}),
            section + " type \"s3\" needs " + name +
                " (in the file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when the file sets no credentials)");
  }
  if (r.region.empty()) invalid(at(c, {"repository.region"}), section + " region must not be empty for type \"s3\"");
}

Config parse_config(const std::string& toml_text, const std::string& origin, bool use_env,
                    const ConfigOverrides& overrides) {
  Config c;
  c.source = origin;
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    throw Error(ErrorKind::Config, origin + " line " + std::to_string(e.source().begin.line) + ": " +
                                       std::string(e.description()));
  }
  auto tables = apply_toml(c, root, origin);
  if (use_env) {
    std::set<std::string> explicit_keys;
    for (const auto& [k, _] : c.origins) explicit_keys.insert(k);
    for (const auto& [k, _] : overrides) explicit_keys.insert(k);
    config_detail::apply_aws_env(c, explicit_keys);
  }
  apply_overrides(c, overrides);
  validate(c);
  config_detail::build_repositories(c, tables, use_env, overrides);
  return c;
}

Config load_config(const std::optional<std::string>& path, const ConfigOverrides& overrides) {
  std::string file;
  bool required = true;
  if (path && !path->empty()) {
    file = *path;
  } else if (const char* env = std::getenv("PGVAULT_CONFIG"); env && *env) {
    file = env;
  } else {
    file = kDefaultConfigPath;
    required = false;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    int err = errno;
    if (!required && err == ENOENT) return parse_config("", "(defaults)", true, overrides);
    throw Error(ErrorKind::Config, "cannot read config file " + file + ": " + std::strerror(err));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), file, true, overrides);
}

std::string Config::where(const std::string& key) const {
  if (auto it = origins.find(key); it != origins.end()) return it->second;
  if (auto it = origins.find(key.substr(0, key.find('.'))); it != origins.end()) return it->second;
  return source;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& [k, _] : key_table()) out.push_back(k);
  return out;
}

}  // namespace pgvault
