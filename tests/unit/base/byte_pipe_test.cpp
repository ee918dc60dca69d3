// The pipe between two threads (BytePipe), its Sink end (PipeInput) and read_beside().
#include "common/base/byte_pipe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace pgvault {
namespace {

// What pump_into hands to its sink: the bytes, and the size of each chunk.
struct CollectChunks final : Sink {
  std::string got;
  std::vector<std::size_t> chunks;
  std::function<void()> on_first;  // runs before the first chunk is kept
  int finished = 0;
  void write(ByteView d) override {
    if (chunks.empty() && on_first) on_first();
    got.append(reinterpret_cast<const char*>(d.data()), d.size());
    chunks.push_back(d.size());
  }
  void finish() override { ++finished; }
};

// The producer waits while `capacity` bytes wait: a consumer that stalls on its first chunk finds no
// chunk larger than the capacity plus one write afterwards (without the bound the producer would run
// ahead into one large chunk), and every byte comes in order.
TEST(BytePipe, BoundedAndOrdered) {
  constexpr std::size_t kCapacity = 1000, kLargestWrite = 37;
  BytePipe pipe(kCapacity, nullptr);
  std::string expected;
  for (int i = 0; i < 2000; ++i) expected += std::string(static_cast<std::size_t>(i % kLargestWrite + 1), static_cast<char>('a' + i % 26));
  std::thread producer([&] {
    for (int i = 0; i < 2000; ++i) {
      std::string piece(static_cast<std::size_t>(i % kLargestWrite + 1), static_cast<char>('a' + i % 26));
      pipe.write(as_bytes(piece));
    }
    pipe.close();
  });
  CollectChunks sink;
  sink.on_first = [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); };
  EXPECT_EQ(pipe.pump_into(sink), expected.size());
  producer.join();
  EXPECT_EQ(sink.got, expected);
  EXPECT_EQ(sink.finished, 1);
  EXPECT_LE(*std::max_element(sink.chunks.begin(), sink.chunks.end()), kCapacity + kLargestWrite - 1);
}

// A waiting consumer is woken once 512 KiB wait (one wake-up per batch, not per 32 KiB message), and at
// close for what is left.
TEST(BytePipe, AWaitingConsumerGetsBatches) {
  BytePipe pipe(8u << 20, nullptr);
  const std::string piece(32u << 10, 'x');
  std::thread producer([&] {
    for (int i = 0; i < 20; ++i) {  // 640 KiB, then 32 KiB more before the close
      pipe.write(as_bytes(piece));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    pipe.write(as_bytes(piece));
    pipe.close();
  });
  CollectChunks sink;
  EXPECT_EQ(pipe.pump_into(sink), 21u * piece.size());
  producer.join();
  ASSERT_GE(sink.chunks.size(), 1u);
  EXPECT_GE(sink.chunks.front(), 512u << 10);
  EXPECT_EQ(sink.got.size(), 21u * piece.size());
}

// pump_into hands the chunks over where they lie: every byte once, in order, then finish(); an abort
// by the producer ends it with Interrupted and no finish().
TEST(BytePipe, PumpIntoMovesEveryByteInOrder) {
  BytePipe pipe(3000, nullptr);
  std::string expected;
  for (int i = 0; i < 5000; ++i) expected += std::string(static_cast<std::size_t>(i % 53 + 1), static_cast<char>('a' + i % 26));
  std::thread producer([&] {
    for (std::size_t at = 0; at < expected.size();) {
      const std::size_t n = std::min<std::size_t>(expected.size() - at, 1 + at % 997);
      pipe.write(as_bytes(std::string_view(expected).substr(at, n)));
      at += n;
    }
    pipe.close();
  });
  CollectChunks sink;
  EXPECT_EQ(pipe.pump_into(sink), expected.size());
  producer.join();
  EXPECT_EQ(sink.got, expected);
  EXPECT_EQ(sink.finished, 1);

  BytePipe abandoned(100, nullptr);
  abandoned.write(as_bytes(std::string("partial")));
  abandoned.abort();
  CollectChunks none;
  EXPECT_THROW_KIND(abandoned.pump_into(none), ErrorKind::Interrupted);
  EXPECT_EQ(none.finished, 0);
}

// Several chunks waiting at once (writes of 600 KiB are not merged: write() coalesces up to 1 MiB)
// leave in the order they were written, front first; the tests above mostly find one merged chunk.
TEST(BytePipe, WaitingChunksLeaveFrontFirst) {
  BytePipe pipe(8u << 20, nullptr);
  std::string expected;
  for (char c : std::string("abcde")) {
    const std::string piece(600u << 10, c);
    pipe.write(as_bytes(piece));
    expected += piece;
  }
  pipe.close();
  CollectChunks sink;
  EXPECT_EQ(pipe.pump_into(sink), expected.size());
  EXPECT_EQ(sink.chunks.size(), 5u);
  EXPECT_TRUE(sink.got == expected);  // not EXPECT_EQ: 3 MiB of text in a failure message
  EXPECT_EQ(sink.finished, 1);
}

TEST(BytePipe, ConsumerFailureReachesProducer) {
  BytePipe pipe(10, nullptr);
  pipe.fail(std::make_exception_ptr(Error(ErrorKind::Transient, "storage down")));
  try {
    pipe.write(as_bytes(std::string("x")));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
  }
}

// read_beside: the reader runs in another thread, feeding the pipe through PipeInput; the caller drains
// it. Every byte arrives in order and the sink is finished once, after the reader closed the pipe.
TEST(ReadBeside, TheReaderRunsInAThreadOfItsOwnAndEveryByteArrives) {
  BytePipe pipe(4096, nullptr);
  PipeInput input(pipe);
  std::string expected;
  for (int i = 0; i < 3000; ++i) expected += std::to_string(i) + ",";
  std::thread::id reader_thread;
  CollectChunks sink;
  read_beside(
      pipe,
      [&] {
        reader_thread = std::this_thread::get_id();
        for (std::size_t at = 0; at < expected.size(); at += 100) input.write(as_bytes(expected.substr(at, 100)));
        input.finish();
      },
      [&] { pipe.pump_into(sink); });
  EXPECT_NE(reader_thread, std::this_thread::get_id());
  EXPECT_EQ(sink.got, expected);
  EXPECT_EQ(sink.finished, 1);
}

// A reader that fails (a damaged object) aborts the pipe: the sink is never finished (nothing is
// committed) and the reader's error is the one thrown, not the writer's Interrupted.
TEST(ReadBeside, AReadFailureIsThrownAndTheSinkIsNotFinished) {
  BytePipe pipe(4096, nullptr);
  PipeInput input(pipe);
  CollectChunks sink;
  try {
    read_beside(
        pipe,
        [&] {
          input.write(as_bytes(std::string(10000, 'x')));
          throw Error(ErrorKind::Corruption, "digest mismatch");
        },
        [&] { pipe.pump_into(sink); });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_STREQ(e.what(), "digest mismatch");
  }
  EXPECT_EQ(sink.finished, 0);
}

// A writer that fails (a file that does not match its checksum) stops the reader at its next write
// into the pipe, even one blocked on a full pipe, and its own error is thrown.
TEST(ReadBeside, AWriteFailureStopsTheReader) {
  BytePipe pipe(1000, nullptr);
  PipeInput input(pipe);
  std::atomic<std::size_t> written{0};
  bool reader_stopped = false;
  try {
    read_beside(
        pipe,
        [&] {
          try {
            for (;;) {
              input.write(as_bytes(std::string(100, 'y')));
              written += 100;
            }
          } catch (const Error&) {
            reader_stopped = true;
            throw;
          }
        },
        [&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the reader fills the pipe and waits
          throw Error(ErrorKind::Corruption, "file x fails verification");
        });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Corruption);
    EXPECT_STREQ(e.what(), "file x fails verification");
  }
  EXPECT_TRUE(reader_stopped);
  EXPECT_LE(written.load(), 1000u);
}

}  // namespace
}  // namespace pgvault
