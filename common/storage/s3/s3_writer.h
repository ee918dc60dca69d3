// Writing S3 objects (s3.h: put()): one PUT up to multipart_threshold (spooled, s3_spool.h), a
// multipart upload beyond (s3_multipart.h), create-if-absent as s3_conditional.h says. Internal to
// common/storage/s3.
#pragma once

#include <memory>
#include <string>

#include "common/storage/s3/s3_client.h"

namespace pgvault::s3 {

// The writer must not outlive the client; it is used by one thread.
std::unique_ptr<ObjectWriter> open_writer(S3Client& client, std::string full, const PutOptions& opts);

}  // namespace pgvault::s3
