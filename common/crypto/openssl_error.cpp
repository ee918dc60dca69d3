#include "common/crypto/openssl_error.h"

#include <openssl/err.h>

#include "common/base/errors.h"

namespace pgvault {

std::string openssl_error_text() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown openssl error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

void throw_openssl(std::string_view what) {
  throw Error(ErrorKind::Internal, std::string(what) + ": " + openssl_error_text());
}

}  // namespace pgvault
