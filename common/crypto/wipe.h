// Wiping secret bytes (keys, key files, passphrases) so they do not outlive their use in memory.
#pragma once

#include <openssl/crypto.h>

namespace pgvault {

// Overwrites the bytes of a contiguous container (Bytes, std::array, std::string) with zeros in a way
// the compiler cannot drop (OPENSSL_cleanse).
template <typename Container>
void wipe(Container& secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size() * sizeof(*secret.data()));
}

// Wipes a container of secret bytes when it goes out of scope, whichever way the scope is left.
template <typename Container>
class WipeOnExit {
 public:
  explicit WipeOnExit(Container& c) : c_(c) {}
  ~WipeOnExit() { wipe(c_); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  Container& c_;
};

}  // namespace pgvault
