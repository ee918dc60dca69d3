// Two threads on one stream of bytes: a bounded pipe between them (BytePipe), the Sink that writes into
// it (PipeInput), and read_beside(), which runs the producing side in a thread of its own while the
// calling thread drains the pipe. base-push's bundle workers, backup-copy's object copy and
// pitr-prepare's large bundles (decoding in one thread, checking and writing the files in the other)
// use them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

#include "common/base/io.h"

namespace pgvault {

// A bounded single-producer/single-consumer byte queue: write() blocks while `capacity` bytes wait;
// the consumer, pump_into(), is woken once min(capacity, 512 KiB) bytes wait or the pipe is closed, and
// takes the chunks where they lie. It is not a Source: nothing copies out of it into a read buffer.
class BytePipe final {
 public:
  BytePipe(std::size_t capacity, std::function<void()> check);
  // Producer. Throws the consumer's error (fail()) or what `check` throws while waiting.
  void write(ByteView data);
  void close();
  // Producer gives up: the consumer's pump_into() throws Interrupted (the object is not committed).
  void abort() noexcept;
  // Consumer: every chunk is written to `dst` where it lies, in order, then dst.finish() after close().
  // Returns the bytes moved.
  std::uint64_t pump_into(Sink& dst);
  void fail(std::exception_ptr error) noexcept;

 private:
  // Moves the next chunk into `chunk`, or returns false at the end. Throws Interrupted after abort().
  bool take_chunk(Bytes& chunk);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Bytes> chunks_;
  std::vector<Bytes> spare_;  // chunks the consumer is done with, emptied, for the producer's next ones
  std::size_t buffered_ = 0;
  std::size_t capacity_;
  std::size_t wake_;  // the consumer waits for this many bytes (or the end): min(capacity, 512 KiB)
  bool closed_ = false;
  bool aborted_ = false;
  std::exception_ptr error_;
  std::function<void()> check_;
};

// The producer's end of a pipe as a Sink: write() is BytePipe::write, finish() closes the pipe.
class PipeInput final : public Sink {
 public:
  explicit PipeInput(BytePipe& pipe) : pipe_(pipe) {}
  void write(ByteView data) override { pipe_.write(data); }
  void finish() override { pipe_.close(); }

 private:
  BytePipe& pipe_;
};

// Runs `read` (the producing side, which feeds `pipe` and closes it when everything was read and
// checked) in a thread of its own while `write` drains `pipe` in the calling thread; returns when both
// ended, the thread joined. A read failure aborts the pipe (what `write` would commit is not committed)
// and is thrown in preference to the writer's error, which it caused; a write failure is handed to the
// reader (its next write into the pipe throws it).
void read_beside(BytePipe& pipe, const std::function<void()>& read, const std::function<void()>& write);

}  // namespace pgvault
