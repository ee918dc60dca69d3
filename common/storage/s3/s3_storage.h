// The s3 Storage (contract in s3.h): the Storage interface over an S3Client. Internal to
// common/storage/s3; make_s3_storage() builds it.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/storage/s3/s3_client.h"

namespace pgvault::s3 {

class S3Storage final : public Storage {
 public:
  S3Storage(const S3Options& options, std::shared_ptr<HttpTransport> transport, std::shared_ptr<CondWrites> cond)
      : client_(options, std::move(transport), std::move(cond)) {}

  std::string describe() const override { return client_.describe(); }
  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override;
  bool create_confirmed() override { return client_.cond_writes().get() == s3caps::Cond::Unsupported; }
  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override;
  ObjectTail get_tail(const std::string& key, std::size_t n) override;
  std::optional<ObjectInfo> head(const std::string& key) override;
  // s3_list.cpp: ListObjectsV2 pages, DELETE, DeleteObjects batches.
  std::vector<ObjectInfo> list(const std::string& prefix) override;
  void remove(const std::string& key) override;
  void remove_many(const std::vector<std::string>& keys) override;

 private:
  void remove_batch(const std::vector<std::string>& keys, std::size_t begin, std::size_t end);
  void remove_each(const std::vector<std::string>& keys, std::size_t begin, std::size_t end);

  S3Client client_;
  // The store answered DeleteObjects 501: delete one by one from now on.
  std::atomic<bool> no_delete_objects_{false};
};

}  // namespace pgvault::s3
