// Reading S3 objects (s3.h: get() and get_tail()). Internal to common/storage/s3.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/storage/s3/s3_client.h"

namespace pgvault::s3 {

// Ranged GETs of get_chunk_size bytes pinned to the first answer's ETag; the first request is made
// here, so a missing key throws NotFound now. The reader must not outlive the client.
std::unique_ptr<Source> open_reader(S3Client& client, std::string full, std::optional<ByteRange> range);

// The last n bytes and the size, from one suffix-range GET (n = 0: one HEAD).
ObjectTail read_tail(S3Client& client, const std::string& full, std::size_t n);

}  // namespace pgvault::s3
