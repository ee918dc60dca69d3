#include "common/base/progress.h"

#include <algorithm>
#include <cstdio>

#include "common/base/format.h"

namespace pgvault {

Progress::Progress(bool enabled, std::string what, Unit unit, std::string noun)
    : enabled_(enabled), what_(std::move(what)), unit_(unit), noun_(std::move(noun)), start_(Clock::now()) {}

void Progress::set_phase(std::string phase) {
  phase_ = std::move(phase);
  tick(true);
}

std::string Progress::render() const {
  const std::uint64_t done = done_.load(), total = total_.load();
  std::string line = what_.empty() ? "" : what_ + ": ";
  if (unit_ == Unit::Items) {
    line += std::to_string(done);
    if (total > 0) line += " of " + std::to_string(total);
    if (!noun_.empty()) line += " " + noun_;
    line += ", " + human_bytes(static_cast<double>(bytes_.load()));
  } else {
    double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    line += human_bytes(static_cast<double>(done));
    if (total > 0) {
      int pct = static_cast<int>(std::min<double>(100.0, 100.0 * static_cast<double>(done) / static_cast<double>(total)));
      line += " / " + human_bytes(static_cast<double>(total)) + " (" + std::to_string(pct) + "%)";
    }
    line += "  " + human_bytes(rate) + "/s";
    if (total > done && rate > 0) line += "  ETA " + human_duration(static_cast<double>(total - done) / rate);
  }
  if (!phase_.empty()) line += "  " + phase_;
  return line;
}

void Progress::tick(bool force) {
  if (!enabled_) return;
  auto now = Clock::now();
  if (!force && now - last_ < std::chrono::milliseconds(500)) return;
  last_ = now;
  std::fprintf(stderr, "\r%-100.100s", render().c_str());
  std::fflush(stderr);
  shown_ = true;
}

void Progress::clear() {
  if (enabled_ && shown_) {
    std::fprintf(stderr, "\r%100s\r", "");
    std::fflush(stderr);
  }
  shown_ = false;
}

}  // namespace pgvault
