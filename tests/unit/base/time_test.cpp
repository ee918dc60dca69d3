// UTC time text (common/base/time.h).
#include "common/base/time.h"

#include <gtest/gtest.h>

#include <string>

#include "common/base/errors.h"
#include "common/base/format.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

TEST(UtcTime, KnownValues) {
  EXPECT_EQ(utc_seconds(1970, 1, 1, 0, 0, 0), 0);
  EXPECT_EQ(utc_seconds(2026, 11, 21, 16, 41, 0), 1795279260);
  EXPECT_EQ(utc_seconds(2024, 2, 29, 23, 59, 59), 1709251199);
  EXPECT_EQ(utc_seconds(2100, 3, 1, 0, 0, 0), 4107542400);
  // A leap second as PostgreSQL accepts it: the first second of the next minute.
  EXPECT_EQ(utc_seconds(2016, 12, 31, 23, 59, 60), 1483228800);
}

TEST(UtcTime, Formats) {
  EXPECT_EQ(format_utc(1795279260), "2026-11-21T16:41:00Z");
  EXPECT_EQ(format_utc(1), "1970-01-01T00:00:01Z");
  EXPECT_EQ(format_utc(0), "");
  EXPECT_EQ(format_utc(-5), "");
  EXPECT_EQ(format_utc_compact(1795279260), "20261121T164100Z");
  EXPECT_EQ(format_utc_compact(0), "19700101T000000Z");
  EXPECT_EQ(format_utc_compact(1709251199), "20240229T235959Z");
}

TEST(UtcTime, ParseRoundTrips) {
  for (std::int64_t t : {std::int64_t{1}, std::int64_t{951782400}, std::int64_t{1709251199},
                         std::int64_t{1795279260}, std::int64_t{4107542400}}) {
    EXPECT_EQ(parse_iso8601(format_utc(t)), t) << t;
    EXPECT_EQ(parse_iso8601_prefix(format_utc(t)), t) << t;
  }
}

TEST(UtcTime, ParseIsStrict) {
  for (const char* bad : {"", "yesterday", "2026-11-21T16:41:00", "2026-11-21T16:41:00Z ", " 2026-11-21T16:41:00Z",
                          "2026-11-21 16:41:00Z", "2026-1-21T16:41:00Z", "+026-11-21T16:41:00Z",
                          "2026-11-21T16:41:00.5Z", "2026-11-21T16:41:00+00", "2026/11/21T16:41:00Z"}) {
    EXPECT_THROW_KIND(parse_iso8601(bad), ErrorKind::InvalidInput);
  }
  testing::expect_error([] { parse_iso8601("noon"); }, ErrorKind::InvalidInput,
                        "\"noon\" is not a UTC time like 2026-11-21T16:41:00Z");
}

TEST(UtcTime, PrefixIgnoresWhatFollows) {
  EXPECT_EQ(parse_iso8601_prefix("2026-11-21T16:41:00.000Z"), 1795279260);
  EXPECT_EQ(parse_iso8601_prefix("2026-11-21T16:41:00"), 1795279260);
  EXPECT_EQ(parse_iso8601_prefix("2026-11-21T16:41:0"), std::nullopt);
  EXPECT_EQ(parse_iso8601_prefix("2026-11-21t16:41:00Z"), std::nullopt);
  EXPECT_EQ(parse_iso8601_prefix("2026-11-2xT16:41:00Z"), std::nullopt);
  EXPECT_EQ(parse_iso8601_prefix(""), std::nullopt);
  // Digits in the right places are not enough: a time that does not exist is not carried over.
  EXPECT_EQ(parse_iso8601_prefix("2028-02-29T00:00:00Z"), 1835395200);
  for (const char* bad : {"2026-11-31T00:00:00Z", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
                          "2026-00-01T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T16:60:00Z"}) {
    EXPECT_EQ(parse_iso8601_prefix(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace pgvault
