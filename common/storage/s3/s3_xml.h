// Just enough XML for S3 responses: find elements by name and read their text.
//
// S3 answers are flat, generated documents (ListBucketResult, Error, DeleteResult,
// InitiateMultipartUploadResult), so pgvault does not need a general parser: elements are found by
// name in document order, their text has entities unescaped (&amp; &lt; &gt; &quot; &apos; &#N; &#xH;),
// CDATA is not used by S3. Malformed input yields empty results, never a crash.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgvault::s3xml {

// The inner text (raw, still escaped) of every <name>...</name> (or <name attr="">...) in doc, in order.
// Nested elements of the same name are not supported (S3 has none).
std::vector<std::string_view> elements(std::string_view doc, std::string_view name);

// Unescaped text of the first <name> element in doc; "" when absent.
std::string text(std::string_view doc, std::string_view name);

// Whether doc has a <name> element.
bool has(std::string_view doc, std::string_view name);

std::string unescape(std::string_view s);
std::string escape(std::string_view s);

// Percent-decoding (for ListObjectsV2 with encoding-type=url).
std::string url_decode(std::string_view s);

}  // namespace pgvault::s3xml
