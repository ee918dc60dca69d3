// fetch_wal_any and its helpers (archive.h): one WAL file from the first of several repositories that
// holds a good copy, and "not in the archive" only when every repository says so.
#include <spdlog/spdlog.h>

#include "common/archive/archive.h"
#include "common/archive/wal_checks.h"
#include "common/base/errors.h"

namespace pgvault {

namespace {

// The database system the repositories must all hold: pg_control's when it was read, else that of the
// first identity met (recorded with the repository it came from, for messages).
struct SystemReference {
  std::optional<std::uint64_t> system_identifier;
  std::string from;

  // Throws Foreign when `repo` holds another system than the reference; else makes its identity the
  // reference when there is none yet.
  void check(Repository& repo) {
    const std::optional<Identity> id = repo.identity();
    if (!id) return;
    if (!system_identifier) {
      system_identifier = id->system_identifier;
      from = repo.describe();
    } else if (!from.empty() && id->system_identifier != *system_identifier) {
      throw Error(ErrorKind::Foreign, "repository " + repo.describe() + " belongs to database system " +
                                          std::to_string(id->system_identifier) + ", but repository " + from +
                                          " to " + std::to_string(*system_identifier) +
                                          ": every repository of one config must hold the same database system");
    }
  }
};

// The answer of every repository, for the message when none served.
std::string answers_text(const std::vector<std::string>& answers) {
  std::string out;
  for (const auto& a : answers) out += (out.empty() ? "" : "; ") + a;
  return out;
}

}  // namespace

std::vector<std::unique_ptr<Repository>> open_fetch_repositories(const Config& config, FetchPatience patience) {
  std::vector<std::unique_ptr<Repository>> out;
  if (config.repositories.size() <= 1) {
    out.push_back(std::make_unique<Repository>(open_storage(config), config));
    return out;
  }
  std::vector<Config> configs = repository_configs(config);
  for (std::size_t i = 0; i < configs.size(); ++i) {
    Config& one = configs[i];
    if (patience == FetchPatience::FallThroughFast && i + 1 < configs.size()) one.repository.retry_time = 1;
    std::unique_ptr<Storage> storage = open_storage(one);
    out.push_back(std::make_unique<Repository>(std::move(storage), std::move(one)));
  }
  return out;
}

FetchOutcome fetch_wal_any(const std::vector<Repository*>& repos, const std::string& name, const std::string& dest,
                           std::optional<std::uint64_t> control_sysid, Digest* digest) {
  if (repos.size() == 1) return fetch_wal(*repos.front(), name, dest, control_sysid, digest);
  if (!WalFileName::parse(name)) throw Error(ErrorKind::InvalidInput, "\"" + name + "\" is not a WAL file name");
  SystemReference system{control_sysid, ""};
  std::optional<Error> failure;  // the first one
  std::vector<std::string> answers;
  for (std::size_t i = 0; i < repos.size(); ++i) {
    Repository& repo = *repos[i];
    try {
      system.check(repo);
      if (fetch_wal(repo, name, dest, control_sysid, digest) == FetchOutcome::Fetched) {
        if (failure) spdlog::info("{} restored from {} after: {}", name, repo.describe(), answers_text(answers));
        return FetchOutcome::Fetched;
      }
      answers.push_back(repo.describe() + ": not in the archive");
    } catch (const Error& e) {
      if (i + 1 < repos.size()) spdlog::warn("{} from {}: {}; trying the next repository", name, repo.describe(), e.what());
      if (!failure) failure = e;
      answers.push_back(repo.describe() + ": " + e.what());
    }
  }
  if (!failure) {
    spdlog::debug("{} is in none of the {} repositories", name, repos.size());
    return FetchOutcome::Missing;
  }
  // One failed and none served: the missing answers of the others do not make this "not in the archive".
  throw Error(failure->kind(), "no repository could serve " + name + " (" + answers_text(answers) + ")");
}

Identity fetch_identity(const std::vector<Repository*>& repos, std::optional<std::uint64_t> control_sysid) {
  std::optional<Error> failure;
  for (Repository* repo : repos) {
    try {
      return checked_identity(*repo, control_sysid);
    } catch (const Error& e) {
      if (!failure) failure = e;
    }
  }
  if (failure) throw *failure;
  throw Error(ErrorKind::Config, "no repository is configured");
}

std::string fetch_spool_owner(const std::vector<Repository*>& repos) {
  std::string out;
  for (Repository* repo : repos) out += (out.empty() ? "" : " + ") + repo->describe();
  return out;
}

}  // namespace pgvault
