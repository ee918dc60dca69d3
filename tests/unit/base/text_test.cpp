// Hex, ASCII case and decimal helpers (common/base/hex.h, common/base/text.h).
#include <gtest/gtest.h>

#include <string>

#include "common/base/errors.h"
#include "common/base/hex.h"
#include "common/base/text.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::expect_error;

TEST(Hex, RoundTripAndCase) {
  Bytes all(256);
  for (int i = 0; i < 256; ++i) all[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
  std::string h = to_hex(all);
  EXPECT_EQ(h.substr(0, 8), "00010203");
  EXPECT_EQ(h.substr(h.size() - 4), "feff");
  EXPECT_EQ(from_hex(h), all);
  EXPECT_EQ(from_hex("DEADbeef"), (Bytes{0xde, 0xad, 0xbe, 0xef}));
  EXPECT_TRUE(from_hex("").empty());
  EXPECT_EQ(to_hex({}), "");
}

TEST(Hex, Rejects) {
  expect_error([] { from_hex("abc"); }, ErrorKind::InvalidInput, "odd length");
  expect_error([] { from_hex("zz"); }, ErrorKind::InvalidInput, "offset 0");
  expect_error([] { from_hex("00g0"); }, ErrorKind::InvalidInput, "offset 2");
  expect_error([] { from_hex("0 "); }, ErrorKind::InvalidInput);
  expect_error([] { from_hex("0x00"); }, ErrorKind::InvalidInput);
}

TEST(Hex, ErrorsNeverQuoteTheInput) {
  // A key file's text reaches from_hex: the message says where, not what.
  try {
    from_hex("5ec2e7q5");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "invalid hex: non-hex digit at offset 6");
  }
}

TEST(Hex, DigitValues) {
  for (int c = 0; c < 256; ++c) {
    char ch = static_cast<char>(c);
    int want = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    EXPECT_EQ(hex_digit_value(ch), want) << c;
  }
}

TEST(AsciiCase, MapsOnlyAsciiLetters) {
  EXPECT_EQ(ascii_lower("Content-MD5: ETag-ABC"), "content-md5: etag-abc");
  EXPECT_EQ(ascii_upper("keep, delete-1"), "KEEP, DELETE-1");
  EXPECT_EQ(ascii_lower(""), "");
  // UTF-8 and every other byte pass unchanged, whatever the locale.
  EXPECT_EQ(ascii_lower("\xc3\x84Z\xc3\xa9"), "\xc3\x84z\xc3\xa9");
  for (int c = 0; c < 256; ++c) {
    std::string one(1, static_cast<char>(c));
    bool upper = c >= 'A' && c <= 'Z', lower = c >= 'a' && c <= 'z';
    EXPECT_EQ(ascii_lower(one), upper ? std::string(1, static_cast<char>(c + 32)) : one) << c;
    EXPECT_EQ(ascii_upper(one), lower ? std::string(1, static_cast<char>(c - 32)) : one) << c;
  }
}

TEST(AsciiCase, RoundTripsHexDigits) {
  Bytes b{0x0a, 0xbc, 0xde, 0xf0};
  EXPECT_EQ(ascii_upper(to_hex(b)), "0ABCDEF0");
  EXPECT_EQ(from_hex(ascii_upper(to_hex(b))), b);
  EXPECT_EQ(ascii_lower(ascii_upper(to_hex(b))), to_hex(b));
}

TEST(Decimal, TakesExactlyADecimalNumber) {
  EXPECT_EQ(parse_decimal_u64("0"), 0u);
  EXPECT_EQ(parse_decimal_u64("7"), 7u);
  EXPECT_EQ(parse_decimal_u64("7301234567890123456"), 7301234567890123456ull);
  EXPECT_EQ(parse_decimal_u64("18446744073709551615"), 18446744073709551615ull);
}

TEST(Decimal, RefusesWhatStoullWouldBend) {
  // Each of these std::stoull accepts (skipping, wrapping or stopping early) or PostgreSQL reads otherwise.
  for (const char* bad : {"", " 7", "7 ", "+7", "-1", "-18446744073709551615", "12abc", "0x10", "010", "00",
                          "18446744073709551616", "99999999999999999999", "123456789012345678901", "1.5", "1e3"}) {
    EXPECT_EQ(parse_decimal_u64(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace pgvault
