// The first error a codec stage threw; later calls rethrow it instead of running on a broken state.
#pragma once

#include <exception>
#include <optional>

#include "common/base/errors.h"

namespace pgvault::codec_format {

class FailureLatch {
 public:
  template <typename F>
  void run(F&& f) {
    if (failure_) throw *failure_;
    try {
      f();
    } catch (const Error& e) {
      failure_ = e;
      throw;
    } catch (const std::exception& e) {
      failure_ = Error(ErrorKind::Internal, e.what());
      throw *failure_;
    }
  }

 private:
  std::optional<Error> failure_;
};

}  // namespace pgvault::codec_format
