// Byte streams: the two tiny interfaces every pipeline stage, storage object and file implements.
//
// A Sink receives bytes in order and is finished exactly once; finish() is where buffered data is flushed
// and where a stage verifies what it saw (a decoder checks digests there). A Source yields bytes until it
// returns 0 (end of stream). Both report failures by throwing pgvault::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pgvault {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(ByteView data) = 0;
  // Flush and verify; after finish() no more writes. Stages pass finish() on to the next stage.
  virtual void finish() = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  // Reads up to buf.size() bytes; returns 0 only at the end of the stream.
  virtual std::size_t read(std::span<std::uint8_t> buf) = 0;
};

// A Sink whose bytes become visible all at once: commit() publishes them (a stored object, a file renamed
// into place), abort() discards them. Storage writers and AtomicFileWriter implement it.
class ObjectWriter : public Sink {
 public:
  // write() from Sink streams data. finish() is commit().
  virtual void commit() = 0;
  void finish() override { commit(); }
  // Discards the object; also what the destructor does when commit() was not called.
  virtual void abort() noexcept = 0;
};

// A sink that appends into a vector (tests, small objects like manifests).
class VectorSink final : public Sink {
 public:
  explicit VectorSink(Bytes& out) : out_(out) {}
  void write(ByteView data) override { out_.insert(out_.end(), data.begin(), data.end()); }
  void finish() override {}

 private:
  Bytes& out_;
};

// A source over a byte span (tests, small objects).
class SpanSource final : public Source {
 public:
  explicit SpanSource(ByteView data) : data_(data) {}
  std::size_t read(std::span<std::uint8_t> buf) override;

 private:
  ByteView data_;
  std::size_t pos_ = 0;
};

// Copies src into dst in chunks of `chunk` bytes, then calls dst.finish(). Returns bytes copied.
std::uint64_t pump(Source& src, Sink& dst, std::size_t chunk = 1 << 20);

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace pgvault
