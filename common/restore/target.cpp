// The recovery target: --target-time parsing, names for messages, and the checks of the options that go
// with a target. parse_target_time stays here rather than in base/: it reads what a user types (any
// zone, a fraction of a second), while parse_iso8601 (repo/manifest.h) reads only the UTC times pgvault
// writes itself.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include "common/base/errors.h"
#include "common/base/text.h"
#include "common/base/time.h"
#include "common/restore/restore_steps.h"

namespace pgvault {

using namespace restore_detail;

namespace {

Error bad_time(const std::string& text, const std::string& why) {
  return Error(ErrorKind::InvalidInput, "--target-time \"" + text + "\": " + why +
                                            " (expected e.g. 2026-11-21 16:41:00.25+00 or 2026-11-21T16:41:00Z)");
}

// The zone at text[i]: "Z", or "+HH", "+HHMM", "+HH:MM" (also "-"), to the end of the text; returns the
// offset from UTC in seconds.
long parse_zone(const std::string& text, std::size_t i) {
  if (i >= text.size()) throw bad_time(text, "a time zone is required");
  if (text[i] == 'Z' || text[i] == 'z') {
    if (i + 1 != text.size()) throw bad_time(text, "unexpected text after the time zone");
    return 0;
  }
  if (text[i] != '+' && text[i] != '-') throw bad_time(text, "a time zone is required");
  int sign = text[i] == '-' ? -1 : 1;
  std::string digits;
  for (std::size_t j = i + 1; j < text.size(); ++j) {
    if (text[j] == ':') continue;
    if (!std::isdigit(static_cast<unsigned char>(text[j]))) throw bad_time(text, "bad time zone");
    digits += text[j];
  }
  if (digits.size() != 2 && digits.size() != 4) throw bad_time(text, "bad time zone");
  int zh = std::stoi(digits.substr(0, 2)), zm = digits.size() == 4 ? std::stoi(digits.substr(2)) : 0;
  if (zh > 15 || zm > 59) throw bad_time(text, "bad time zone");
  return sign * (zh * 3600L + zm * 60L);
}

}  // namespace

double parse_target_time(const std::string& text) {
  int y, mo, d, h, mi, s, n = 0;
  // A year is 4 digits: sscanf's %d would also skip leading space and take a sign, and PostgreSQL reads
  // a shorter first field by its DateStyle ("26-11-21": month 26 by default), never as the year %4d read.
  if (text.size() < 5 || text[4] != '-' ||
      !std::all_of(text.begin(), text.begin() + 4, [](unsigned char c) { return std::isdigit(c); })) {
    throw bad_time(text, "not a date and time");
  }
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*[ T]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6) {
    throw bad_time(text, "not a date and time");
  }
  std::size_t i = static_cast<std::size_t>(n);
  double frac = 0;
  if (i < text.size() && text[i] == '.') {
    std::size_t j = i + 1;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i + 1) throw bad_time(text, "empty fraction of a second");
    frac = std::stod("0" + text.substr(i, j - i));
    i = j;
  }
  while (i < text.size() && text[i] == ' ') ++i;
  long offset = parse_zone(text, i);
  // PostgreSQL refuses a day its month does not have (2026-11-31, 2026-02-29) and would not start; utc_seconds
  // would have rolled it into the next month.
  if (y < 1 || !valid_utc_fields(y, mo, d, h, mi, s)) throw bad_time(text, "out of range");
  return static_cast<double>(utc_seconds(y, mo, d, h, mi, s) - offset) + frac;
}

namespace restore_detail {

std::string target_kind_name(TargetKind k) {
  switch (k) {
    case TargetKind::Latest: return "latest";
    case TargetKind::Immediate: return "immediate";
    case TargetKind::Time: return "time";
    case TargetKind::Lsn: return "lsn";
    case TargetKind::Xid: return "xid";
    case TargetKind::Name: return "name";
  }
  return "?";
}

std::string describe_target(const RecoveryTarget& t) {
  if (t.kind == TargetKind::Latest || t.kind == TargetKind::Immediate) return target_kind_name(t.kind);
  return target_kind_name(t.kind) + " " + t.value;
}

std::optional<std::uint32_t> check_target_options(const RestoreOptions& opts) {
  const TargetKind k = opts.target.kind;
  if (opts.exclusive && k != TargetKind::Time && k != TargetKind::Lsn && k != TargetKind::Xid) {
    throw Error(ErrorKind::InvalidInput, "--target-exclusive applies to a time, LSN or xid target only");
  }
  if (opts.target_action != "promote" && opts.target_action != "pause" && opts.target_action != "shutdown") {
    throw Error(ErrorKind::InvalidInput, "--target-action must be promote, pause or shutdown");
  }
  if (opts.archive_mode != "off" && opts.archive_mode != "preserve") {
    throw Error(ErrorKind::InvalidInput, "--archive-mode must be off or preserve, not \"" + opts.archive_mode + "\"");
  }
  if (opts.target_timeline == "latest" || opts.target_timeline == "current") return std::nullopt;
  std::optional<std::uint64_t> v = parse_decimal_u64(opts.target_timeline);
  if (!v || *v == 0 || *v > 0xFFFFFFFFull) {
    throw Error(ErrorKind::InvalidInput, "--target-timeline must be latest, current or a timeline number, not \"" +
                                             opts.target_timeline + "\"");
  }
  return static_cast<std::uint32_t>(*v);
}

}  // namespace restore_detail
}  // namespace pgvault
