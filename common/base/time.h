// UTC times as ISO-8601 text and back: the one copy every library uses (manifests, lock files,
// reports, backup labels, S3 listings and request dates).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgvault {

// Unix time of a UTC calendar time, fields as people write them (month 1..12). Out-of-range fields
// carry over as timegm(3) does (second 60 is the first second of the next minute).
std::int64_t utc_seconds(int year, int month, int day, int hour, int minute, int second);

// Whether the fields name a real UTC calendar time: month 1..12, a day its month has (leap years
// counted), hour 0..23, minute 0..59, second 0..60 (a leap second). utc_seconds would carry any other
// value over (2026-11-31 into December 1).
bool valid_utc_fields(int year, int month, int day, int hour, int minute, int second);

// "2026-11-21T16:41:00Z" (extended format); "" for t <= 0 (an unknown time).
std::string format_utc(std::int64_t unix_time);

// "20261121T164100Z" (basic format: backup labels, S3's x-amz-date); any t, 0 included.
std::string format_utc_compact(std::int64_t unix_time);

// Reads "YYYY-MM-DDTHH:MM:SS" (digits exactly so) at the start of `text`, ignoring what follows (S3
// lists "2026-11-21T16:41:00.000Z"); nullopt when the text does not start so or its fields are not a
// real time (valid_utc_fields).
std::optional<std::int64_t> parse_iso8601_prefix(std::string_view text);

// Reads exactly "YYYY-MM-DDTHH:MM:SSZ", what format_utc writes. Throws ErrorKind::InvalidInput naming
// the text otherwise.
std::int64_t parse_iso8601(std::string_view text);

}  // namespace pgvault
