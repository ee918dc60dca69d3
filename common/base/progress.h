// Progress: the one progress line of pgvault (base-push, pitr-prepare, archive-info --verify), on stderr,
// rewritten in place at most twice a second, and nothing at all when disabled (the tools enable it only
// on a terminal or with --progress).
//
// The line: "<what>: <done> / <total> (<pct>%)  <rate>/s  ETA <t>  <phase>", amounts in bytes, or, with
// Unit::Items, "<what>: <done> of <total> <noun>, <bytes>".
// Threads: add()/add_bytes() may be called from any thread (workers); set_*(), tick() and clear() from the
// owning thread only (e.g. TaskGroup's on_tick).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace pgvault {

class Progress {
 public:
  // Unit::Bytes is a scoped name, not the type pgvault::Bytes (base/io.h), which GCC's -Wshadow would
  // otherwise report in every file that includes both.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
  enum class Unit { Bytes, Items };
#pragma GCC diagnostic pop
  Progress(bool enabled, std::string what, Unit unit = Unit::Bytes, std::string noun = "");
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() { clear(); }

  bool enabled() const { return enabled_; }
  void set_total(std::uint64_t total) { total_.store(total); }
  void set_done(std::uint64_t done) { done_.store(done); }
  void add(std::uint64_t n) { done_.fetch_add(n); }
  // Items mode: the bytes behind the items, shown after the count.
  void add_bytes(std::uint64_t n) { bytes_.fetch_add(n); }
  std::uint64_t done() const { return done_.load(); }
  // Redraws at once with the new phase ("" removes it).
  void set_phase(std::string phase);
  // Redraws when the last line is older than 500 ms (always with force).
  void tick(bool force = false);
  // Erases the line (when one is shown).
  void clear();

  // The line as tick() would print it (tests).
  std::string render() const;

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  std::string what_;
  Unit unit_;
  std::string noun_;
  std::atomic<std::uint64_t> total_{0}, done_{0}, bytes_{0};
  std::string phase_;
  Clock::time_point start_, last_{};
  bool shown_ = false;
};

}  // namespace pgvault
