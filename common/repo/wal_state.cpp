// The state folder of a repository and the record of the last archive-info --verify (wal_state.h).
#include "common/repo/wal_state.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/base/fs.h"
#include "common/base/io.h"
#include "common/repo/local_state.h"

namespace pgvault {

namespace {

constexpr int kVerifyFormat = 1;

nlohmann::json verify_json(const std::string& repository, const VerifyRecord& r) {
  return {{"format", kVerifyFormat}, {"repository", repository}, {"time", r.time},     {"ok", r.ok},
          {"scope", r.scope},        {"objects", r.objects},     {"bytes", r.bytes}, {"problems", r.problems}};
}

VerifyRecord verify_from_json(const nlohmann::json& j, const std::string& repository) {
  if (j.at("format").get<int>() != kVerifyFormat) throw std::runtime_error("unknown format");
  if (j.at("repository").get<std::string>() != repository) throw std::runtime_error("written for another repository");
  VerifyRecord r;
  r.time = j.at("time").get<std::int64_t>();
  r.ok = j.at("ok").get<bool>();
  r.scope = j.at("scope").get<std::string>();
  r.objects = j.at("objects").get<std::uint64_t>();
  r.bytes = j.at("bytes").get<std::uint64_t>();
  r.problems = j.at("problems").get<std::uint64_t>();
  return r;
}

}  // namespace

std::string repository_state_dir(const Config& config, bool create) {
  return local_state_base(config.check.state_dir, "state", create) + "/" + repository_state_name(config.repository);
}

void write_verify_record(const Config& config, const VerifyRecord& r) {
  const std::string dir = repository_state_dir(config, true);
  make_dirs(dir, 0700);
  AtomicFileWriter w(dir + "/verify.json", /*no_replace=*/false, /*durable=*/true, 0600);
  w.write(as_bytes(verify_json(config.repository.name, r).dump() + "\n"));
  w.commit();
}

std::optional<VerifyRecord> read_verify_record(const Config& config) {
  const std::string path = repository_state_dir(config, false) + "/verify.json";
  std::string text;
  try {
    text = read_state_file(path, 64 * 1024);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::NotFound) spdlog::warn("ignoring the verify record {}: {}", path, e.what());
    return std::nullopt;
  }
  try {
    return verify_from_json(nlohmann::json::parse(text), config.repository.name);
  } catch (const std::exception& e) {
    spdlog::warn("ignoring the verify record {}: not a pgvault verify record ({})", path, e.what());
    return std::nullopt;
  }
}

}  // namespace pgvault
