// OpenSSL's error queue as text: the one copy for every library that calls OpenSSL (crypto, codec).
#pragma once

#include <string>
#include <string_view>

namespace pgvault {

// The oldest error on this thread's OpenSSL error queue as one line ("unknown openssl error" when the
// queue is empty); the queue is cleared. It never contains key material.
std::string openssl_error_text();

// Throws ErrorKind::Internal "<what>: <openssl_error_text()>": OpenSSL failed where it should not.
[[noreturn]] void throw_openssl(std::string_view what);

}  // namespace pgvault
