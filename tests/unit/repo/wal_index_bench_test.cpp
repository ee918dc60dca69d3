// Not a test: the per-segment cost of the WAL index wal-push builds (the scan, common/pg/wal_records.h,
// plus make_wal_index) next to the cost of encoding the same segment (zstd-3 + SHA-256, ObjectEncoder),
// both from memory in the 256 KiB pieces Repository::put_object reads. Run by tests/bench/bench.py
// (section wal) on the real segments it generates:
//   PGVAULT_BENCH_WAL_SEGMENTS=seg1:seg2:... wal_index_bench_test --gtest_also_run_disabled_tests
// Prints one line per segment and a summary line "wal-index-bench: ..." that bench.py parses.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/base/fs.h"
#include "common/codec/codec.h"
#include "common/pg/wal.h"
#include "common/pg/wal_records.h"
#include "common/repo/wal_index.h"

using namespace pgvault;

namespace {

constexpr std::size_t kPiece = 256 << 10;  // Repository::put_object's read size
constexpr int kReps = 3;                   // best of: the machine is shared

std::vector<std::string> segment_paths() {
  std::vector<std::string> out;
  const char* env = std::getenv("PGVAULT_BENCH_WAL_SEGMENTS");
  std::string list = env ? env : "";
  for (std::size_t start = 0; start < list.size();) {
    std::size_t end = list.find(':', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) out.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Milliseconds of the fastest of kReps runs of `f`.
double best_ms(const std::function<void()>& f) {
  double best = 1e18;
  for (int rep = 0; rep < kReps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - t0;
    best = std::min(best, took.count());
  }
  return best;
}

void scan(const Bytes& seg, const WalFileName& name) {
  const auto size = static_cast<std::uint32_t>(seg.size());
  WalScanner scanner(size, segment_number(name.log, name.seg, size) * size, name.name);
  for (std::size_t i = 0; i < seg.size() && !scanner.done(); i += kPiece) {
    scanner.feed(ByteView(seg.data() + i, std::min(kPiece, seg.size() - i)));
  }
  const WalIndex index = make_wal_index(name, scanner.summary());
  ASSERT_GT(scanner.summary().records, 0u) << name.name;
  (void)index;
}

void encode(const Bytes& seg) {
  struct Counting final : Sink {
    void write(ByteView d) override { n += d.size(); }
    void finish() override {}
    std::size_t n = 0;
  } out;
  EncodeOptions o;  // zstd level 3, no encryption: SHA-256 of the plaintext
  ObjectEncoder enc(out, o);
  for (std::size_t i = 0; i < seg.size(); i += kPiece) {
    enc.write(ByteView(seg.data() + i, std::min(kPiece, seg.size() - i)));
  }
  enc.finish();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace

TEST(WalIndex, DISABLED_BenchScanVsEncode) {
  const auto paths = segment_paths();
  if (paths.empty()) GTEST_SKIP() << "set PGVAULT_BENCH_WAL_SEGMENTS to segment files separated by ':'";
  std::vector<double> scans, encodes, ratios;
  for (const auto& path : paths) {
    Bytes seg;
    FileSource file(path);
    VectorSink buffer(seg);
    pump(file, buffer);
    const auto name = WalFileName::parse(base_name(path));
    ASSERT_TRUE(name && name->kind == WalFileKind::Segment) << path;
    const double s = best_ms([&] { scan(seg, *name); });
    const double e = best_ms([&] { encode(seg); });
    std::printf("%s scan %.2f ms encode %.2f ms\n", name->name.c_str(), s, e);
    scans.push_back(s);
    encodes.push_back(e);
    ratios.push_back(s / e);
  }
  std::printf("wal-index-bench: segments=%zu scan_ms=%.3f encode_ms=%.3f ratio=%.4f\n", paths.size(),
              median(scans), median(encodes), median(ratios));
}
