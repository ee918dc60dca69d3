#include <cctype>
#include <map>
#include <string>

#include "common/config/config_values.h"

namespace pgvault::config_detail {

namespace {

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

// A setter storing the string as given into the field `getter` returns.
template <typename Getter>
Setter plain(Getter getter) {
  return [getter](Config& c, const RawValue& v, const std::string& k) { getter(c) = as_string(v, k); };
}

// [repository]: where the repository is and how to reach it.
void add_repository_keys(std::map<std::string, Setter>& t) {
  t["repository.name"] = plain([](Config& c) -> std::string& { return c.repository.name; });
  t["repository.required"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.repository.required = as_bool(v, k);
  };
  t["repository.max_owed_segments"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.repository.max_owed_segments = static_cast<int>(as_int(v, k, 1, 1000000));
  };
  t["repository.max_owed_age"] = [](Config& c, const RawValue& v, const std::string& k) {
    std::string s = as_string(v, k);
    if (parse_duration(s, v.where + ": " + k) <= 0) bad(v, k, "a positive duration");
    c.repository.max_owed_age = s;
  };
  t["repository.type"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.repository.type = as_choice(v, k, {"fs", "s3"});
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
    c.repository.retry_time = static_cast<int>(as_int(v, k, 1, 86400));
  };
}

// [compression] and [encryption]: how objects are encoded.
void add_object_keys(std::map<std::string, Setter>& t) {
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
  t["encryption.method"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.encryption.method =
        as_choice(v, k, {"none", "aes-256-gcm"}) == "none" ? Encryption::None : Encryption::Aes256Gcm;
  };
  t["encryption.key_file"] = plain([](Config& c) -> std::string& { return c.encryption.key_file; });
  t["encryption.passphrase_file"] = plain([](Config& c) -> std::string& { return c.encryption.passphrase_file; });
}

// [push], [fetch] and [backup]: the tools' own settings.
void add_job_keys(std::map<std::string, Setter>& t) {
  t["push.parallel"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.push.parallel = static_cast<int>(as_int(v, k, 1, 64));
  };
  t["push.spool"] = plain([](Config& c) -> std::string& { return c.push.spool; });
  t["push.owed_dir"] = plain([](Config& c) -> std::string& { return c.push.owed_dir; });
  t["fetch.prefetch"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.fetch.prefetch = static_cast<int>(as_int(v, k, 0, 256));
  };
  t["fetch.on_error"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.fetch.on_error = as_choice(v, k, {"auto", "abort", "missing"});
  };
  t["fetch.spool"] = plain([](Config& c) -> std::string& { return c.fetch.spool; });
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
}

// [retention] and [log].
void add_retention_and_log_keys(std::map<std::string, Setter>& t) {
  t["retention.full_backups"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.retention.full_backups = static_cast<int>(as_int(v, k, 0, 100000));
  };
  t["retention.window"] = [](Config& c, const RawValue& v, const std::string& k) {
    std::string s = as_string(v, k);
    if (!s.empty() && parse_duration(s, v.where + ": " + k) <= 0) bad(v, k, "a positive duration");
    c.retention.window = s;
  };
  t["retention.incremental_window"] = [](Config& c, const RawValue& v, const std::string& k) {
    std::string s = as_string(v, k);
    if (!s.empty() && parse_duration(s, v.where + ": " + k) <= 0) bad(v, k, "a positive duration");
    c.retention.incremental_window = s;
  };
  t["retention.min_full_backups"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.retention.min_full_backups = static_cast<int>(as_int(v, k, 1, 100000));
  };
  t["retention.incomplete_grace"] = [](Config& c, const RawValue& v, const std::string& k) {
    std::string s = as_string(v, k);
    parse_duration(s, v.where + ": " + k);
    c.retention.incomplete_grace = s;
  };
  t["log.level"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.log.level = as_choice(v, k, {"debug", "info", "warning", "error"});
  };
  t["log.file"] = [](Config& c, const RawValue& v, const std::string& k) { c.log.file = as_string(v, k); };
  t["notify.command"] = [](Config& c, const RawValue& v, const std::string& k) { c.notify.command = as_string(v, k); };
  t["notify.on"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.notify.always = as_choice(v, k, {"failure", "always"}) == "always";
  };
  t["notify.timeout"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.notify.timeout = as_int(v, k, 1, 3600);
  };
}

// [check]: archive-info --check thresholds.
void add_check_keys(std::map<std::string, Setter>& t) {
  auto duration = [](std::string Config::Check::*field) {
    return [field](Config& c, const RawValue& v, const std::string& k) {
      std::string s = as_string(v, k);
      if (!s.empty()) parse_duration(s, v.where + ": " + k);
      c.check.*field = s;
    };
  };
  auto count = [](int Config::Check::*field) {
    return [field](Config& c, const RawValue& v, const std::string& k) {
      c.check.*field = static_cast<int>(as_int(v, k, 0, 100000000));
    };
  };
  t["check.backup_age_warning"] = duration(&Config::Check::backup_age_warning);
  t["check.backup_age_critical"] = duration(&Config::Check::backup_age_critical);
  t["check.wal_age_warning"] = duration(&Config::Check::wal_age_warning);
  t["check.wal_age_critical"] = duration(&Config::Check::wal_age_critical);
  t["check.owed_warning"] = count(&Config::Check::owed_warning);
  t["check.owed_critical"] = count(&Config::Check::owed_critical);
  t["check.lag_warning"] = count(&Config::Check::lag_warning);
  t["check.lag_critical"] = count(&Config::Check::lag_critical);
  t["check.verify_age_warning"] = duration(&Config::Check::verify_age_warning);
  t["check.verify_age_critical"] = duration(&Config::Check::verify_age_critical);
  t["check.state_dir"] = plain([](Config& c) -> std::string& { return c.check.state_dir; });
}

// [drill]: restore-drill's settings.
void add_drill_keys(std::map<std::string, Setter>& t) {
  t["drill.bin_dir"] = plain([](Config& c) -> std::string& { return c.drill.bin_dir; });
  t["drill.work_dir"] = plain([](Config& c) -> std::string& { return c.drill.work_dir; });
  t["drill.port"] = [](Config& c, const RawValue& v, const std::string& k) {
    c.drill.port = static_cast<int>(as_int(v, k, 0, 65535));
  };
  t["drill.counts"] = plain([](Config& c) -> std::string& { return c.drill.counts; });
  t["drill.sql_file"] = plain([](Config& c) -> std::string& { return c.drill.sql_file; });
  t["drill.sql_database"] = [](Config& c, const RawValue& v, const std::string& k) {
    std::string s = as_string(v, k);
    if (s.empty()) bad(v, k, "a database name");
    c.drill.sql_database = s;
  };
  t["drill.timeout"] = [](Config& c, const RawValue& v, const std::string& k) {
    std::string s = as_string(v, k);
    if (parse_duration(s, v.where + ": " + k) <= 0) bad(v, k, "a positive duration");
    c.drill.timeout = s;
  };
}

}  // namespace

const std::map<std::string, Setter>& key_table() {
  static const std::map<std::string, Setter> table = [] {
    std::map<std::string, Setter> t;
    add_repository_keys(t);
    add_object_keys(t);
    add_job_keys(t);
    add_retention_and_log_keys(t);
    add_check_keys(t);
    add_drill_keys(t);
    return t;
  }();
  return table;
}

}  // namespace pgvault::config_detail
