#include "common/base/errors.h"

#include <cerrno>
#include <cstring>

namespace pgvault {

std::string_view kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::NotFound: return "not-found";
    case ErrorKind::Duplicate: return "duplicate";
    case ErrorKind::Corruption: return "corruption";
    case ErrorKind::Auth: return "auth";
    case ErrorKind::Transient: return "transient";
    case ErrorKind::Io: return "io";
    case ErrorKind::Config: return "config";
    case ErrorKind::InvalidInput: return "invalid-input";
    case ErrorKind::Foreign: return "foreign-cluster";
    case ErrorKind::Conflict: return "conflict";
    case ErrorKind::Interrupted: return "interrupted";
    case ErrorKind::NotInitialised: return "not-initialised";
    case ErrorKind::Internal: return "internal";
  }
  return "internal";
}

Error errno_error(std::string_view what, int err) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Error(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io, std::move(msg));
}

}  // namespace pgvault
