// What every s3 Storage of one process opened on the same store shares: the libcurl transport (its
// easy handles, so their open connections, TLS sessions and DNS cache go to whichever thread sends the
// next request) and the conditional-write knowledge (CondWrites, s3_caps.h: a 501 learned by one thread
// is known to all). wal-push's look-ahead threads each open their own Repository; through this they
// use the connections the others opened instead of one TLS handshake and one 501 probe each.
// Held weakly: the pieces live while a Storage uses them. Internal to common/storage/s3.
#pragma once

#include <memory>

#include "common/storage/s3/s3_caps.h"
#include "common/storage/s3/s3_config.h"
#include "common/storage/s3/transport.h"

namespace pgvault::s3 {

// The libcurl transport for these options' endpoint and HTTP settings, shared with every other
// Storage of this process that has the same ones.
std::shared_ptr<HttpTransport> shared_curl_transport(const S3Options& o);

// The conditional-write knowledge of this endpoint and bucket with this capability file, shared the
// same way (another endpoint or bucket has its own, probed again).
std::shared_ptr<CondWrites> shared_cond_writes(const S3Options& o);

}  // namespace pgvault::s3
