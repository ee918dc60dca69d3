// The config tests' helper: the message of the Config error that parsing `toml` throws.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "common/base/errors.h"
#include "common/config/config.h"

namespace pgvault::testing_config {

inline std::string config_error(const std::string& toml, const ConfigOverrides& o = {}) {
  try {
    parse_config(toml, "test.toml", false, o);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << toml;
  return "";
}

}  // namespace pgvault::testing_config
