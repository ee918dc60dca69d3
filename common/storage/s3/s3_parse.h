// Parsers of the values an S3 answer carries (sizes, times, ETags). Internal to common/storage/s3;
// parse_content_range is declared in s3.h.
#pragma once

#include <cstdint>
#include <string>

namespace pgvault::s3 {

// Decimal digits only (at most 19); *ok false otherwise.
std::uint64_t parse_u64(const std::string& s, bool* ok);
// An ETag without its quotes, lowercased (the MD5 form compares with sigv4::md5_hex).
std::string etag_value(const std::string& header);

}  // namespace pgvault::s3
