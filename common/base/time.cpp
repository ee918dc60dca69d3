#include "common/base/time.h"

#include <ctime>

#include "common/base/errors.h"

namespace pgvault {

namespace {

std::string strftime_utc(std::int64_t unix_time, const char* format) {
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// The value of text[pos, pos + n) when it is n decimal digits.
std::optional<int> digits(std::string_view text, std::size_t pos, std::size_t n) {
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

}  // namespace

std::int64_t utc_seconds(int year, int month, int day, int hour, int minute, int second) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&tm));
}

bool valid_utc_fields(int year, int month, int day, int hour, int minute, int second) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 ||
      second > 60) {
    return false;
  }
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return day <= (month == 2 && leap ? 29 : kDays[month - 1]);
}

std::string format_utc(std::int64_t unix_time) {
  if (unix_time <= 0) return "";
  return strftime_utc(unix_time, "%Y-%m-%dT%H:%M:%SZ");
}

std::string format_utc_compact(std::int64_t unix_time) { return strftime_utc(unix_time, "%Y%m%dT%H%M%SZ"); }

std::optional<std::int64_t> parse_iso8601_prefix(std::string_view text) {
  static constexpr std::string_view kShape = "0000-00-00T00:00:00";
  if (text.size() < kShape.size()) return std::nullopt;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] != '0' && text[i] != kShape[i]) return std::nullopt;
  }
  auto year = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
  auto hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second ||
      !valid_utc_fields(*year, *month, *day, *hour, *minute, *second)) {
    return std::nullopt;
  }
  return utc_seconds(*year, *month, *day, *hour, *minute, *second);
}

std::int64_t parse_iso8601(std::string_view text) {
  auto t = parse_iso8601_prefix(text);
  if (!t || text.substr(19) != "Z") {
    throw Error(ErrorKind::InvalidInput, "\"" + std::string(text) + "\" is not a UTC time like 2026-11-21T16:41:00Z");
  }
  return *t;
}

}  // namespace pgvault
