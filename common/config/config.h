// Configuration: one TOML file, the standard AWS environment variables, and command-line overrides.
//
// Where the file is: --config PATH, else $PGVAULT_CONFIG, else /etc/pgvault/pgvault.toml. A file named by
// --config or PGVAULT_CONFIG must exist; the default path may be absent (then defaults apply).
// Precedence: overrides (--set flags) > PGVAULT_* variables > file > ambient AWS_* variables > defaults.
// The AWS variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or
// AWS_DEFAULT_REGION) and AWS_ENDPOINT_URL only fill [repository] keys that neither the file nor a flag
// sets; the three credential variables count as one: when the file or a flag sets any of
// access_key_id, secret_access_key or session_token, none of them applies (a stray session token must
// not join the file's keys). The only PGVAULT_* variables are PGVAULT_CONFIG (which file) and
// PGVAULT_LOG_LEVEL (beats [log] level, not --set log.level or --verbose; see cli.cpp).
// Every key is defined once in config.cpp (name, type, default, check); conf/pgvault.toml documents them.
// Unknown sections or keys and bad values throw ErrorKind::Config naming the file, line and key; so do
// checks across several keys, naming the line of the key at fault.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/codec/options.h"

namespace pgvault {

struct Config {
  // One repository's settings: [repository], or a [repositories.NAME] table (same keys).
  struct Repository {
    std::string name = "primary";  // [repository] name; a [repositories.NAME] table's NAME
    // required = true: wal-push exits 0 only when a file is durable here. false: the repository may lag;
    // a failed push here is recorded as owed (repo/owed.h) and pushed later, within the bounds below.
    bool required = true;
    int max_owed_segments = 1024;      // more owed than this: wal-push fails (naming the repository)
    std::string max_owed_age = "24h";  // the oldest owed entry older than this: wal-push fails
    std::string type = "fs";  // "fs" | "s3"
    std::string path = "/var/lib/pgvault/repo";
    std::string bucket;
    std::string prefix;
    std::string endpoint;
    std::string region = "us-east-1";
    std::string uri_style = "path";  // "path" | "virtual"
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;
    bool verify_tls = true;
    std::string ca_file;
    std::uint64_t part_size = 16ull << 20;   // s3 multipart part size (and the single-PUT threshold)
    int upload_parallel = 4;                 // s3 parts uploaded at once per object
    int timeout = 60;                        // s3: seconds without progress before a request is cut
    int connect_timeout = 10;                // s3: seconds to connect
    int retry_time = 120;                    // s3: total seconds of retries before giving up
  } repository;  // the repository a single-repository tool acts on: the first one, or the one --repo names

  struct CompressionCfg {
    Compression method = Compression::Zstd;
    int level = 3;
    // zstd worker threads for one object: kAutoThreads ("auto": the tool decides, see
    // Repository::encode_options), 0 (compress in the calling thread) or 1..64 workers.
    int threads = kAutoThreads;
    static constexpr int kAutoThreads = -1;
  } compression;

  struct EncryptionCfg {
    Encryption method = Encryption::None;
    std::string key_file;
    std::string passphrase_file;
  } encryption;

  struct Push {
    int parallel = 4;
    std::string spool;  // look-ahead spool folder ("" = derived from the repository, outside PGDATA)
    // The owed queue of repositories allowed to lag (repo/owed.h): "" = /var/lib/pgvault/owed when that
    // folder exists or can be created (not by root), else /var/tmp/pgvault-<uid>/owed (persistent, outside PGDATA).
    std::string owed_dir;
  } push;

  struct Fetch {
    int prefetch = 8;
    std::string on_error = "auto";  // "auto" | "abort" | "missing"
    std::string spool;
  } fetch;

  struct Backup {
    std::string conninfo;
    int parallel = 0;  // 0 = number of cores
    std::uint64_t bundle_size = 64ull << 20;
    std::string checkpoint = "fast";  // "fast" | "spread"
  } backup;

  struct Retention {
    int full_backups = 0;
    std::string window;  // "" or N{h,d,w}
    int min_full_backups = 1;
    std::string incremental_window;  // "" or N{h,d,w}: incrementals older than this go unless needed
    std::string incomplete_grace = "24h";
  } retention;  // the policy of `repository`

  // Every configured repository in file order, [repository] first, each with its own retention policy
  // ([repositories.NAME.retention]; a table that is absent inherits [retention], and so does every key
  // it leaves unset). After --repo NAME (select_repository) it holds that one repository only.
  struct RepositoryEntry {
    Repository repository;
    Retention retention;
  };
  std::vector<RepositoryEntry> repositories;

  // Failure notifications (common/cli/notify.h): `command` run by /bin/sh -c with the event as JSON on stdin.
  struct Notify {
    std::int64_t timeout = 30;       // seconds before the command is killed
    bool always = false;             // on = "always": after successful runs too; "failure" (default): not
    std::string command = {};        // "" = off. Default: off
  } notify;
  // [check]: thresholds of `archive-info --check` (report/check.h). Durations as N{s,m,h,d,w}; "" turns
  // a duration rule off, 0 a count rule.
  struct Check {
    std::string backup_age_warning = "25h";   // newest complete backup older than this
    std::string backup_age_critical = "49h";
    std::string wal_age_warning = "1h";       // WAL waiting to be archived (or, without a server, the
    std::string wal_age_critical = "6h";      // newest archived segment) older than this
    int owed_warning = 64;                    // segments owed to a repository allowed to lag
    int owed_critical = 512;
    int lag_warning = 64;                     // segments a repository is behind the most advanced one
    int lag_critical = 512;
    std::string verify_age_warning = "";      // the last archive-info --verify longer ago than this ("" =
    std::string verify_age_critical = "";     // off; a repository never verified: warning when either is set)
    // The local state of archive-info --verify and the WAL tools' counters (repo/wal_state.h). "" =
    // /var/lib/pgvault/state when it exists or can be created (not by root), else /var/tmp/pgvault-<uid>/state.
    std::string state_dir;
  } check;
  // restore-drill (common/drill/drill.h).
  struct Drill {
    std::string bin_dir;               // PostgreSQL server programs; "" = /usr/lib/postgresql/<major>/bin
    std::string work_dir;              // "" = a new directory under $TMPDIR or /var/tmp
    int port = 0;                      // 0 = a free port
    std::string counts;                // tables to count: "db.schema.table, ..."
    std::string sql_file;              // queries that must each return true; "" = none
    std::string sql_database = "postgres";  // the database sql_file's queries run in
    std::string timeout = "30m";       // for the server to start and recovery to end
  } drill;

  struct Log {
    // "debug" | "info" | "warning" | "error"; "" (default): info on a terminal, else warning (quiet from cron)
    std::string level;
    std::string file;  // "" = none; else every line is appended there too (info and above at least)
  } log;


  std::string source = "(defaults)";  // the file the values came from, for messages
  // Where each value set came from, by "section.key" ("pgvault.toml line 4", "environment AWS_REGION",
  // "option repository.path"), and each section header by "section"; defaults are absent.
  std::map<std::string, std::string> origins;
  // For messages: where `key` ("section.key") was set, else where its section starts, else source.
  std::string where(const std::string& key) const;
};

// The configuration narrowed to the repository named `name`: `repository` and `retention` are its own,
// `repositories` holds only it, and origins of its keys read as "repository.KEY" / "retention.KEY".
// Throws Config naming the configured names when there is none by that name.
Config select_repository(const Config& config, const std::string& name);
// One narrowed configuration per configured repository, in order (select_repository of each).
std::vector<Config> repository_configs(const Config& config);

// "section.key" -> value, from command-line flags (e.g. --set repository.path=/x, or
// --set repositories.NAME.path=/y and --set repositories.NAME.retention.window=7d for the others).
using ConfigOverrides = std::map<std::string, std::string>;

// Resolves the path as described above, then loads. `env` is looked up with getenv when nullptr.
Config load_config(const std::optional<std::string>& path, const ConfigOverrides& overrides = {});

// Parses TOML text (for tests); `origin` names it in messages.
Config parse_config(const std::string& toml_text, const std::string& origin, bool apply_env,
                    const ConfigOverrides& overrides = {});

// Every key ("section.key"), for documentation checks.
std::vector<std::string> config_keys();

// Parses "64MiB", "1GiB", "512KiB", "100MB", "4096" into bytes. Throws Config naming `what`.
std::uint64_t parse_size(const std::string& text, const std::string& what);
// Parses "30d", "12h", "2w", "90m" into seconds. Throws Config naming `what`.
std::int64_t parse_duration(const std::string& text, const std::string& what);

}  // namespace pgvault
