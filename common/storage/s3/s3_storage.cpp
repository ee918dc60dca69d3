#include "common/storage/s3/s3_storage.h"

#include "common/base/errors.h"
#include "common/storage/s3/curl_api.h"
#include "common/storage/s3/s3_parse.h"
#include "common/storage/s3/s3_reader.h"
#include "common/storage/s3/s3_shared.h"
#include "common/storage/s3/s3_writer.h"

namespace pgvault {
namespace s3 {

std::unique_ptr<ObjectWriter> S3Storage::put(const std::string& key, const PutOptions& opts) {
  return open_writer(client_, client_.full_key(key), opts);
}

std::unique_ptr<Source> S3Storage::get(const std::string& key, std::optional<ByteRange> range) {
  return open_reader(client_, client_.full_key(key), range);
}

ObjectTail S3Storage::get_tail(const std::string& key, std::size_t n) {
  return read_tail(client_, client_.full_key(key), n);
}

std::optional<ObjectInfo> S3Storage::head(const std::string& key) {
  auto r = client_.head_raw(client_.full_key(key));
  if (!r) return std::nullopt;
  ObjectInfo info;
  info.key = key;
  bool ok = false;
  info.size = parse_u64(r->header("content-length"), &ok);
  if (!ok) throw Error(ErrorKind::Transient, "s3 head " + client_.where(client_.full_key(key)) + ": no content-length");
  std::string lm = r->header("last-modified");
  if (!lm.empty()) {
    std::time_t t = curl_api().getdate(lm.c_str(), nullptr);
    info.mtime = t > 0 ? t : 0;
  }
  return info;
}

}  // namespace s3

std::unique_ptr<Storage> make_s3_storage(const S3Options& o) {
  s3::validate_options(o);
  return std::make_unique<s3::S3Storage>(o, s3::shared_curl_transport(o), s3::shared_cond_writes(o));
}

std::unique_ptr<Storage> make_s3_storage(const S3Options& o, std::shared_ptr<HttpTransport> transport) {
  s3::validate_options(o);
  if (!transport) throw Error(ErrorKind::Internal, "s3: no http transport");
  return std::make_unique<s3::S3Storage>(o, std::move(transport), s3::shared_cond_writes(o));
}

}  // namespace pgvault
