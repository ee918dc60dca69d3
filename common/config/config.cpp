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

namespace pgvault {
namespace {

constexpr const char* kDefaultConfigPath = "/etc/pgvault/pgvault.toml";

// A value as it arrives from TOML, the environment or a flag: TOML keeps its type, the others are text.
struct RawValue {
  std::optional<std::string> text;     // strings, and everything from env/flags
  std::optional<std::int64_t> integer; // TOML integers
  std::optional<bool> boolean;         // TOML booleans
  std::string where;                   // "pgvault.toml line 4", "AWS_REGION", "--set"
};

[[noreturn]] void bad(const RawValue& v, const std::string& key, const std::string& expected) {
  throw Error(ErrorKind::Config, v.where + ": " + key + " must be " + expected);
}

std::string as_string(const RawValue& v, const std::string& key) {
  if (!v.text) bad(v, key, "a string");
  return *v.text;
}

std::int64_t as_int(const RawValue& v, const std::string& key, std::int64_t lo, std::int64_t hi) {
  std::int64_t n = 0;
  if (v.integer) {
    n = *v.integer;
  } else if (v.text) {
    const std::string& s = *v.text;
    char* end = nullptr;
    errno = 0;
    long long parsed = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0) {
      bad(v, key, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    n = parsed;
  } else {
    bad(v, key, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  if (n < lo || n > hi) {
    bad(v, key, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " +
                    std::to_string(n) + ")");
  }
  return n;
}

bool as_bool(const RawValue& v, const std::string& key) {
  if (v.boolean) return *v.boolean;
  if (v.text) {
    if (*v.text == "true" || *v.text == "1" || *v.text == "on") return true;
    if (*v.text == "false" || *v.text == "0" || *v.text == "off") return false;
  }
  bad(v, key, "true or false");
}

std::string as_choice(const RawValue& v, const std::string& key, std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) {
    if (v.text && *v.text == c) return c;
    list += list.empty() ? "" : " | ";
    list += '"';
    list += c;
    list += '"';
  }
  bad(v, key, "one of " + list);
}

std::uint64_t as_size(const RawValue& v, const std::string& key) {
  if (v.integer) {
    if (*v.integer <= 0) bad(v, key, "a positive size");
    return static_cast<std::uint64_t>(*v.integer);
  }
  if (!v.text) bad(v, key, "a size such as \"64MiB\"");
  return parse_size(*v.text, v.where + ": " + key);
}

// "http(s)://host[:port]" with nothing after the host and port (the S3 backend parses it again).
bool valid_endpoint(const std::string& e) {
  std::string rest;
  if (e.starts_with("https://")) rest = e.substr(8);
  else if (e.starts_with("http://")) rest = e.substr(7);
  else return false;
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string::npos) return false;
  std::size_t colon = rest.rfind(':');
  std::size_t bracket = rest.rfind(']');
  if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) return true;
  std::string port = rest.substr(colon + 1);
  return colon > 0 && !port.empty() && port.find_first_not_of("0123456789") == std::string::npos;
}

// The one definition of every key: name and how a raw value is checked and stored.
using Setter = std::function<void(Config&, const RawValue&, const std::string& key)>;

const std::map<std::string, Setter>& key_table() {
  static const std::map<std::string, Setter> table = [] {
    std::map<std::string, Setter> t;
    // repository
    t["repository.type"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.repository.type = as_choice(v, k, {"fs", "s3"});
    };
    auto plain = [](auto getter) {
      return [getter](Config& c, const RawValue& v, const std::string& k) { getter(c) = as_string(v, k); };
    };
    t["repository.path"] = plain([](Config& c) -> std::string& { return c.repository.path; });
    t["repository.bucket"] = plain([](Config& c) -> std::string& { return c.repository.bucket; });
    t["repository.prefix"] = plain([](Config& c) -> std::string& { return c.repository.prefix; });
    t["repository.endpoint"] = [](Config& c, const RawValue& v, const std::string& k) {
      std::string e = as_string(v, k);
      if (!e.empty() && !valid_endpoint(e)) bad(v, k, "a URL such as \"https://host[:port]\" with no path");
      c.repository.endpoint = e;
    };
    t["repository.region"] = plain([](Config& c) -> std::string& { return c.repository.region; });
    t["repository.access_key_id"] = plain([](Config& c) -> std::string& { return c.repository.access_key_id; });
    t["repository.secret_access_key"] =
        plain([](Config& c) -> std::string& { return c.repository.secret_access_key; });
    t["repository.session_token"] = plain([](Config& c) -> std::string& { return c.repository.session_token; });
    t["repository.ca_file"] = plain([](Config& c) -> std::string& { return c.repository.ca_file; });
    t["repository.uri_style"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.repository.uri_style = as_choice(v, k, {"path", "virtual"});
    };
    t["repository.verify_tls"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.repository.verify_tls = as_bool(v, k);
    };
    t["repository.part_size"] = [](Config& c, const RawValue& v, const std::string& k) {
      std::uint64_t n = as_size(v, k);
      if (n < (5ull << 20) || n > (5ull << 30)) bad(v, k, "between 5MiB and 5GiB (S3 part limits)");
      c.repository.part_size = n;
    };
    t["repository.upload_parallel"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.repository.upload_parallel = static_cast<int>(as_int(v, k, 1, 64));
    };
    t["repository.timeout"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.repository.timeout = static_cast<int>(as_int(v, k, 1, 3600));
    };
    t["repository.connect_timeout"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.repository.connect_timeout = static_cast<int>(as_int(v, k, 1, 600));
    };
    t["repository.retry_time"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.repository.retry_time = static_cast<int>(as_int(v, k, 0, 86400));
    };
    // compression
    t["compression.method"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.compression.method = as_choice(v, k, {"zstd", "none"}) == "zstd" ? Compression::Zstd : Compression::None;
    };
    t["compression.level"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.compression.level = static_cast<int>(as_int(v, k, -7, 19));
    };
    t["compression.threads"] = [](Config& c, const RawValue& v, const std::string& k) {
      if (v.text && *v.text == "auto") {
        c.compression.threads = Config::CompressionCfg::kAutoThreads;
        return;
      }
      if (!v.integer && !(v.text && !v.text->empty() && std::isdigit(static_cast<unsigned char>(v.text->front())))) {
        bad(v, k, "\"auto\" or an integer between 0 and 64");
      }
      c.compression.threads = static_cast<int>(as_int(v, k, 0, 64));
    };
    // encryption
    t["encryption.method"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.encryption.method =
          as_choice(v, k, {"none", "aes-256-gcm"}) == "none" ? Encryption::None : Encryption::Aes256Gcm;
    };
    t["encryption.key_file"] = plain([](Config& c) -> std::string& { return c.encryption.key_file; });
    t["encryption.passphrase_file"] = plain([](Config& c) -> std::string& { return c.encryption.passphrase_file; });
    // push / fetch
    t["push.parallel"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.push.parallel = static_cast<int>(as_int(v, k, 1, 64));
    };
    t["push.spool"] = plain([](Config& c) -> std::string& { return c.push.spool; });
    t["fetch.prefetch"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.fetch.prefetch = static_cast<int>(as_int(v, k, 0, 256));
    };
    t["fetch.on_error"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.fetch.on_error = as_choice(v, k, {"auto", "abort", "missing"});
    };
    t["fetch.spool"] = plain([](Config& c) -> std::string& { return c.fetch.spool; });
    // backup
    t["backup.conninfo"] = plain([](Config& c) -> std::string& { return c.backup.conninfo; });
    t["backup.parallel"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.backup.parallel = static_cast<int>(as_int(v, k, 0, 256));
    };
    t["backup.bundle_size"] = [](Config& c, const RawValue& v, const std::string& k) {
      std::uint64_t n = as_size(v, k);
      if (n < (1ull << 20) || n > (4ull << 30)) bad(v, k, "between 1MiB and 4GiB");
      c.backup.bundle_size = n;
    };
    t["backup.checkpoint"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.backup.checkpoint = as_choice(v, k, {"fast", "spread"});
    };
    // retention
    t["retention.full_backups"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.retention.full_backups = static_cast<int>(as_int(v, k, 0, 100000));
    };
    t["retention.window"] = [](Config& c, const RawValue& v, const std::string& k) {
      std::string s = as_string(v, k);
      if (!s.empty() && parse_duration(s, v.where + ": " + k) <= 0) bad(v, k, "a positive duration");
      c.retention.window = s;
    };
    t["retention.min_full_backups"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.retention.min_full_backups = static_cast<int>(as_int(v, k, 1, 100000));
    };
    t["retention.incomplete_grace"] = [](Config& c, const RawValue& v, const std::string& k) {
      std::string s = as_string(v, k);
      parse_duration(s, v.where + ": " + k);
      c.retention.incomplete_grace = s;
    };
    // log
    t["log.level"] = [](Config& c, const RawValue& v, const std::string& k) {
      c.log.level = as_choice(v, k, {"debug", "info", "warning", "error"});
    };
    return t;
  }();
  return table;
}

void apply(Config& c, const std::string& key, const RawValue& v) {
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

void apply_toml(Config& c, const toml::table& root, const std::string& origin) {
  for (const auto& [section_key, section_node] : root) {
    std::string section(section_key.str());
    auto line = [&](const toml::node& n) { return origin + " line " + std::to_string(n.source().begin.line); };
    const toml::table* section_table = section_node.as_table();
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
      apply(c, section + "." + std::string(key.str()), v);
    }
  }
}

// Ambient AWS_* variables fill only what `explicit_keys` (set by the file or a flag) leaves unset; the
// credentials count as one setting.
void apply_env(Config& c, const std::set<std::string>& explicit_keys) {
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
    apply(c, e.key, RawValue{std::string(val), {}, {}, std::string("environment ") + e.env});
  }
}

void apply_overrides(Config& c, const ConfigOverrides& overrides) {
  for (const auto& [k, val] : overrides) {
    if (k.find('.') == std::string::npos) {
      throw Error(ErrorKind::Config, "option " + k + ": expected section.key");
    }
    apply(c, k, RawValue{val, {}, {}, "option " + k});
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

void validate_repository(const Config& c) {
  const auto& r = c.repository;
  if (r.type == "fs") {
    if (r.path.empty()) {
      invalid(at(c, {"repository.path", "repository.type"}), "[repository] path must be set for type \"fs\"");
    }
    if (r.path.front() != '/') {
      invalid(at(c, {"repository.path"}), "[repository] path must be an absolute path (got \"" + r.path + "\")");
    }
    return;
  }
  if (r.bucket.empty()) {
    invalid(at(c, {"repository.bucket", "repository.type"}), "[repository] bucket must be set for type \"s3\"");
  }
  const std::pair<const char*, const std::string*> credentials[] = {{"access_key_id", &r.access_key_id},
                                                                     {"secret_access_key", &r.secret_access_key}};
  for (const auto& [name, value] : credentials) {
    if (!value->empty()) continue;
    const std::string key = std::string("repository.") + name;
    invalid(at(c, {key.c_str(), "repository.type"}),
            std::string("[repository] type \"s3\" needs ") + name +
                " (in the file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when the file sets no credentials)");
  }
  if (r.region.empty()) invalid(at(c, {"repository.region"}), "[repository] region must not be empty for type \"s3\"");
}

void validate(const Config& c) {
  validate_repository(c);
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
  apply_toml(c, root, origin);
  if (use_env) {
    std::set<std::string> explicit_keys;
    for (const auto& [k, _] : c.origins) explicit_keys.insert(k);
    for (const auto& [k, _] : overrides) explicit_keys.insert(k);
    apply_env(c, explicit_keys);
  }
  apply_overrides(c, overrides);
  validate(c);
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

std::uint64_t parse_size(const std::string& text, const std::string& what) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  static const std::map<std::string, std::uint64_t> units = {
      {"", 1},          {"B", 1},           {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
      {"TiB", 1ull << 40}, {"kB", 1000},     {"KB", 1000},        {"MB", 1000000},     {"GB", 1000000000},
  };
  auto u = units.find(unit);
  if (i == 0 || u == units.end() || i > 15) {
    throw Error(ErrorKind::Config, what + " must be a size such as \"64MiB\" (got \"" + text + "\")");
  }
  return std::stoull(text.substr(0, i)) * u->second;
}

std::int64_t parse_duration(const std::string& text, const std::string& what) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  static const std::map<std::string, std::int64_t> units = {
      {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 7 * 86400}};
  auto u = units.find(unit);
  if (i == 0 || u == units.end() || i > 12) {
    throw Error(ErrorKind::Config,
                what + " must be a duration such as \"30d\" (units s, m, h, d, w; got \"" + text + "\")");
  }
  return std::stoll(text.substr(0, i)) * u->second;
}

}  // namespace pgvault
