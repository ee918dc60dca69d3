#include "common/storage/s3/s3_shared.h"

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "common/storage/s3/http.h"

namespace pgvault::s3 {
namespace {

// A process-wide table of weakly held pieces: the one for `key`, made by `make` when none is alive.
template <typename T>
std::shared_ptr<T> shared_piece(const std::string& key, const std::function<std::shared_ptr<T>()>& make) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<T>> table;
  std::lock_guard lock(mu);
  for (auto it = table.begin(); it != table.end();) {
    it = it->second.expired() ? table.erase(it) : std::next(it);
  }
  if (auto alive = table[key].lock()) return alive;
  std::shared_ptr<T> made = make();
  table[key] = made;
  return made;
}

}  // namespace

std::shared_ptr<HttpTransport> shared_curl_transport(const S3Options& o) {
  const HttpSettings h = http_settings(o);
  // Everything that shapes a connection: the endpoint and every transport setting.
  const std::string key = parse_endpoint(o.endpoint, o.region).id() + '\n' + std::to_string(h.connect_timeout_s) +
                          ' ' + std::to_string(h.low_speed_limit) + ' ' + std::to_string(h.low_speed_time_s) + ' ' +
                          std::to_string(h.request_timeout_s) + ' ' + (h.verify_tls ? "verify" : "noverify") + '\n' +
                          h.ca_file;
  return shared_piece<HttpTransport>(key, [&] { return make_curl_transport(h); });
}

std::shared_ptr<CondWrites> shared_cond_writes(const S3Options& o) {
  const std::string endpoint = parse_endpoint(o.endpoint, o.region).id();
  const std::string key = endpoint + '\n' + o.bucket + '\n' + o.capability_file;
  return shared_piece<CondWrites>(
      key, [&] { return std::make_shared<CondWrites>(o.capability_file, endpoint, o.bucket); });
}

}  // namespace pgvault::s3
