// Several repositories: the [repositories.NAME] tables, their retention tables, their overrides, and the
// narrowing of a configuration to one repository (--repo NAME).
#include <algorithm>
#include <cctype>
#include <set>
#include <string>

#include "common/base/errors.h"
#include "common/config/config_values.h"

namespace pgvault {
namespace config_detail {
namespace {

constexpr const char* kPrefix = "repositories.";

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '_' || ch == '-';
  });
}

std::string line_of(const std::string& origin, const toml::node& n) {
  return origin + " line " + std::to_string(n.source().begin.line);
}

RawValue raw_of(const toml::node& node, const std::string& where) {
  RawValue v;
  v.where = where;
  if (auto s = node.value<std::string>(); s && node.is_string()) v.text = *s;
  else if (node.is_integer()) v.integer = *node.value<std::int64_t>();
  else if (node.is_boolean()) v.boolean = *node.value<bool>();
  else if (node.is_floating_point()) v.text = std::to_string(*node.value<double>());
  return v;
}

// The values of one [repositories.NAME] table: its keys as "repository.KEY", its retention table's as
// "retention.KEY". A `name` key is refused: the table's name is the repository's.
RepositoryTable read_table(const std::string& name, const toml::table& table, const std::string& origin) {
  RepositoryTable out{name, line_of(origin, table), {}};
  const std::string section = "[repositories." + name + "]";
  for (const auto& [key_node, node] : table) {
    std::string key(key_node.str());
    if (key == "retention" && node.is_table()) {
      for (const auto& [rkey, rnode] : *node.as_table()) {
        std::string full = "retention." + std::string(rkey.str());
        if (key_table().count(full) == 0) {
          throw Error(ErrorKind::Config, line_of(origin, rnode) + ": unknown key " + std::string(rkey.str()) +
                                             " in [repositories." + name + ".retention]");
        }
        out.values.emplace_back(full, raw_of(rnode, line_of(origin, rnode)));
      }
      continue;
    }
    if (node.is_table() || key == "name" || key_table().count("repository." + key) == 0) {
      throw Error(ErrorKind::Config, line_of(origin, node) + ": unknown key " + key + " in " + section +
                                         (key == "name" ? " (the table's name is the repository's name)" : ""));
    }
    out.values.emplace_back("repository." + key, raw_of(node, line_of(origin, node)));
  }
  return out;
}

// The key a "repositories.NAME.KEY" origin is recorded under, from the entry's "repository.KEY" or
// "retention.KEY".
std::string entry_origin_key(const std::string& name, const std::string& key) {
  return key.starts_with("retention.") ? kPrefix + name + "." + key : kPrefix + name + "." + key.substr(11);
}

// "repositories.NAME.KEY" -> ("NAME", "repository.KEY" or "retention.KEY"); throws on a malformed name.
std::pair<std::string, std::string> split_override(const std::string& k) {
  std::string rest = k.substr(std::string(kPrefix).size());
  auto dot = rest.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == rest.size()) {
    throw Error(ErrorKind::Config, "option " + k + ": expected repositories.NAME.KEY");
  }
  std::string name = rest.substr(0, dot), key = rest.substr(dot + 1);
  return {name, key.starts_with("retention.") ? key : "repository." + key};
}

// One [repositories.NAME] entry: defaults, retention inherited from c, the file's values, the AWS
// variables for what neither the file nor a flag sets, then the overrides.
Config::RepositoryEntry build_entry(Config& c, const RepositoryTable& t, bool use_env, const ConfigOverrides& overrides) {
  Config sub;
  sub.source = c.source;
  sub.retention = c.retention;
  sub.origins["repository"] = t.where;
  for (const auto& [key, v] : t.values) apply_key(sub, key, v);
  std::vector<std::pair<std::string, std::string>> own_overrides;
  for (const auto& [k, val] : overrides) {
    if (!k.starts_with(kPrefix)) continue;
    auto [name, key] = split_override(k);
    if (name == t.name) own_overrides.emplace_back(key, val);
  }
  if (use_env) {
    std::set<std::string> explicit_keys;
    for (const auto& [k, _] : sub.origins) explicit_keys.insert(k);
    for (const auto& [k, _] : own_overrides) explicit_keys.insert(k);
    apply_aws_env(sub, explicit_keys);
  }
  for (const auto& [key, val] : own_overrides) apply_key(sub, key, RawValue{val, {}, {}, std::string("option ") + kPrefix + t.name + "." + key});
  sub.repository.name = t.name;
  validate_repository(sub, "[repositories." + t.name + "]");
  c.origins[kPrefix + t.name] = t.where;
  for (const auto& [k, where] : sub.origins) {
    if (k.starts_with("repository.") || k.starts_with("retention.")) {
      c.origins[entry_origin_key(t.name, k)] = where;
    }
  }
  return {sub.repository, sub.retention};
}

// Where a repository's objects live, for the check that two entries are not one repository.
std::string location_of(const Config::Repository& r) {
  if (r.type == "fs") {
    std::string p = r.path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return "fs:" + p;
  }
  return "s3:" + r.endpoint + "/" + r.bucket + "/" + r.prefix;
}

void check_unique(const Config& c) {
  std::set<std::string> names, locations;
  for (const auto& e : c.repositories) {
    const std::string& n = e.repository.name;
    std::string where = c.repositories.front().repository.name == n && &e == &c.repositories.front()
                            ? c.where("repository.name")
                            : c.where(kPrefix + n);
    if (!names.insert(n).second) {
      throw Error(ErrorKind::Config, where + ": two repositories are named \"" + n + "\"");
    }
    if (!locations.insert(location_of(e.repository)).second) {
      throw Error(ErrorKind::Config, where + ": repository \"" + n + "\" has the location of another repository (" +
                                         location_of(e.repository) + ")");
    }
  }
}

}  // namespace

std::vector<RepositoryTable> read_repository_tables(const toml::table& section, const std::string& origin) {
  std::vector<RepositoryTable> out;
  for (const auto& [name_node, node] : section) {
    std::string name(name_node.str());
    const toml::table* table = node.as_table();
    if (!table) {
      throw Error(ErrorKind::Config, line_of(origin, node) + ": [repositories] holds tables such as " +
                                         "[repositories.cloud], not the key " + name);
    }
    if (!valid_name(name)) {
      throw Error(ErrorKind::Config, line_of(origin, node) + ": repository name \"" + name +
                                         "\" must be 1-64 letters, digits, '_' or '-'");
    }
    out.push_back(read_table(name, *table, origin));
  }
  return out;
}

void build_repositories(Config& c, const std::vector<RepositoryTable>& tables, bool use_env,
                        const ConfigOverrides& overrides) {
  if (!valid_name(c.repository.name)) {
    throw Error(ErrorKind::Config, c.where("repository.name") + ": repository name \"" + c.repository.name +
                                       "\" must be 1-64 letters, digits, '_' or '-'");
  }
  c.repositories.clear();
  c.repositories.push_back({c.repository, c.retention});
  for (const auto& t : tables) c.repositories.push_back(build_entry(c, t, use_env, overrides));
  for (const auto& [k, _] : overrides) {
    if (!k.starts_with(kPrefix)) continue;
    auto [name, key] = split_override(k);
    bool known = std::any_of(tables.begin(), tables.end(), [&](const RepositoryTable& t) { return t.name == name; });
    if (!known) throw Error(ErrorKind::Config, "option " + k + ": no [repositories." + name + "] table in " + c.source);
  }
  check_unique(c);
}

}  // namespace config_detail

Config select_repository(const Config& config, const std::string& name) {
  std::string names;
  for (std::size_t i = 0; i < config.repositories.size(); ++i) {
    const auto& e = config.repositories[i];
    names += (names.empty() ? "" : ", ") + e.repository.name;
    if (e.repository.name != name) continue;
    Config out = config;
    out.repository = e.repository;
    out.retention = e.retention;
    out.repositories = {e};
    if (i == 0) return out;
    const std::string prefix = std::string(config_detail::kPrefix) + name + ".";
    std::erase_if(out.origins, [](const auto& kv) { return kv.first.starts_with("repository"); });
    for (const auto& [k, where] : config.origins) {
      if (!k.starts_with(prefix)) continue;
      std::string key = k.substr(prefix.size());
      out.origins[key.starts_with("retention.") ? key : "repository." + key] = where;
    }
    out.origins["repository"] = config.where(std::string(config_detail::kPrefix) + name);
    return out;
  }
  throw Error(ErrorKind::Config, config.source + ": no repository named \"" + name + "\" (configured: " + names + ")");
}

std::vector<Config> repository_configs(const Config& config) {
  std::vector<Config> out;
  for (const auto& e : config.repositories) out.push_back(select_repository(config, e.repository.name));
  return out;
}

}  // namespace pgvault
