#include "common/storage/factory.h"

#include <algorithm>

#include "common/base/errors.h"
#include "common/storage/s3/s3.h"
#include "common/storage/storage_fs.h"

namespace pgvault {
namespace {

S3Options s3_options(const Config::Repository& r) {
  S3Options o;
  o.bucket = r.bucket;
  o.prefix = r.prefix;
  o.endpoint = r.endpoint;
  o.region = r.region;
  o.uri_style = r.uri_style;
  o.access_key_id = r.access_key_id;
  o.secret_access_key = r.secret_access_key;
  o.session_token = r.session_token;
  o.verify_tls = r.verify_tls;
  o.ca_file = r.ca_file;
  o.part_size = r.part_size;
  // A 16 MiB WAL segment, even stored uncompressed and encrypted, goes in one PUT.
  o.multipart_threshold = std::max<std::uint64_t>(r.part_size, 20ull << 20);
  o.upload_parallel = r.upload_parallel;
  o.connect_timeout_s = r.connect_timeout;
  o.low_speed_time_s = r.timeout;
  o.total_timeout_s = r.retry_time;
  return o;
}

}  // namespace

std::unique_ptr<Storage> open_storage(const Config& config) {
  const auto& r = config.repository;
  if (r.type == "fs") return make_fs_storage(r.path);
  if (r.type == "s3") return make_s3_storage(s3_options(r));
  throw Error(ErrorKind::Config, config.source + ": [repository] type \"" + config.repository.type +
                                     "\" is not supported by this build");
}

}  // namespace pgvault
