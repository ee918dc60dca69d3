// retention-prune over several repositories (prune_all.h).
#include "common/retention/prune_all.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/repo/repo.h"

namespace pgvault {

namespace {

// One repository's run: require_initialised first, so that no lock is written at a mistyped location.
std::string prune_one(const Config& c, const PruneOptions& opts) {
  RetentionPolicy policy = retention_policy(c);
  Repository repo(open_storage(c), c);
  repo.require_initialised();
  return run_retention_prune(repo, policy, opts);
}

std::string failure_json(const std::string& name, const Error& e) {
  nlohmann::json j = {{"name", name}, {"ok", false}, {"error", e.what()}, {"error_kind", kind_name(e.kind())}};
  return j.dump();
}

// One entry of the JSON list: the report object is inserted as printed (it is JSON already).
std::string report_json(const std::string& name, const std::string& report) {
  std::string body = report;
  while (!body.empty() && (body.back() == '\n' || body.back() == ' ')) body.pop_back();
  return "{\"name\": " + nlohmann::json(name).dump() + ", \"ok\": true, \"report\": " + body + "}";
}

}  // namespace

std::string prune_repositories(const std::vector<Config>& configs, const PruneOptions& opts,
                               std::vector<PruneFailure>& failures) {
  if (configs.size() == 1) return prune_one(configs.front(), opts);  // one repository: its report, unchanged
  std::string text, json;
  for (const auto& c : configs) {
    const std::string& name = c.repository.name;
    std::string entry;
    try {
      std::string report = prune_one(c, opts);
      text += "repository " + name + ":\n" + report;
      entry = report_json(name, report);
    } catch (const Error& e) {
      spdlog::error("repository {}: {}", name, e.what());
      failures.push_back({name, e});
      text += "repository " + name + ": failed: " + e.what() + "\n";
      entry = failure_json(name, e);
    }
    json += (json.empty() ? "\n  " : ",\n  ") + entry;
  }
  return opts.json ? "{\"repositories\": [" + json + "\n]}\n" : text;
}

Error prune_failures_error(const std::vector<PruneFailure>& failures) {
  std::string names;
  for (const auto& f : failures) names += (names.empty() ? "" : ", ") + f.repository;
  return Error(failures.front().error.kind(), "retention-prune failed in " + std::to_string(failures.size()) +
                                                  " repositories (" + names + "): " + failures.front().error.what());
}

}  // namespace pgvault
