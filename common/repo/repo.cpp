#include "common/repo/repo.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "common/base/errors.h"
#include "common/base/format.h"
#include "common/base/version.h"

namespace pgvault {

std::string now_iso8601() { return format_utc(static_cast<std::int64_t>(std::time(nullptr))); }

Repository::Repository(std::unique_ptr<Storage> storage, Config config)
    : storage_(std::move(storage)), config_(std::move(config)) {}

EncodeOptions Repository::encode_options() {
  EncodeOptions o;
  o.compression = config_.compression.method;
  o.level = config_.compression.level;
  o.threads = config_.compression.threads;
  // Every object the repository encodes gets the smaller window and match tables (repo.h).
  o.window_log = kEncodeWindowLog;
  o.table_log = kEncodeTableLog;
  if (o.threads == Config::CompressionCfg::kAutoThreads) {
    o.threads = auto_threads_;
    // 1 MiB jobs: a 16 MiB segment still splits into enough jobs for every worker, and each worker
    // buffers about two jobs, which keeps wal-push well under 32 MiB (zstd's default is 4x the window).
    if (o.threads > 0) o.job_size = 1 << 20;
  }
  o.key = write_key();
  return o;
}

namespace {

// An encoding slot (Repository::set_encode_slots) held from construction to release() or destruction.
class EncodeSlot {
 public:
  explicit EncodeSlot(EncodeSlots* slots) : slots_(slots) {
    if (slots_ != nullptr) slots_->acquire();
  }
  ~EncodeSlot() { release(); }
  EncodeSlot(const EncodeSlot&) = delete;
  EncodeSlot& operator=(const EncodeSlot&) = delete;
  void release() noexcept {
    if (slots_ != nullptr) slots_->release();
    slots_ = nullptr;
  }

 private:
  EncodeSlots* slots_;
};

// A storage writer whose commit gives the encoding slot back first: the upload and the store's wait
// run while another object encodes.
class SlotReleasingWriter final : public ObjectWriter {
 public:
  SlotReleasingWriter(ObjectWriter& inner, EncodeSlot& slot) : inner_(inner), slot_(slot) {}
  void write(ByteView data) override { inner_.write(data); }
  void commit() override {
    slot_.release();
    inner_.commit();
  }
  void abort() noexcept override { inner_.abort(); }

 private:
  ObjectWriter& inner_;
  EncodeSlot& slot_;
};

}  // namespace

Digest Repository::put_object(const std::string& key, Source& src, const PutOptions& opts) {
  EncodeOptions eo = encode_options();
  eo.bound_name = key;  // an encrypted object is bound to the key it is stored under
  // An object of at most 1 MiB (a WAL index, a small record: one zstd job whatever the job size)
  // compresses in this thread: zstd's workers would only add their start (threads, buffers).
  if (opts.size && *opts.size <= (1u << 20)) eo.threads = 0;
  auto writer = storage_->put(key, opts);
  EncodeSlot slot(encode_slots_);
  SlotReleasingWriter gated(*writer, slot);
  ObjectEncoder enc(gated, eo);
  // 256 KiB reads: several objects are encoded at once by look-ahead, and each read buffer counts.
  pump(src, enc, 256 << 10);  // finish() writes the trailer and commits the writer
  return enc.digest();
}

Digest Repository::get_object(const std::string& key, Sink& out) {
  auto src = storage_->get(key);
  ObjectDecoder dec(out, read_key(), key, describe() + "/" + key);
  pump(*src, dec);
  return dec.digest();
}

void Repository::put_bytes(const std::string& key, ByteView plaintext, const PutOptions& opts) {
  SpanSource src(plaintext);
  put_object(key, src, opts);
}

Bytes Repository::get_bytes(const std::string& key) {
  Bytes out;
  VectorSink sink(out);
  get_object(key, sink);
  return out;
}

namespace {

// Gathers what it is given in chunks of 1 MiB (the last one partly filled), for one copy into a string
// of the exact size at the end.
class ChunkSink final : public Sink {
 public:
  void write(ByteView data) override {
    while (!data.empty()) {
      if (chunks_.empty() || chunks_.back().size() == kChunk) chunks_.emplace_back().reserve(kChunk);
      Bytes& c = chunks_.back();
      const std::size_t n = std::min(data.size(), kChunk - c.size());
      c.insert(c.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
      data = data.subspan(n);
    }
  }
  void finish() override {}
  std::string joined() {
    std::size_t size = 0;
    for (const auto& c : chunks_) size += c.size();
    std::string out;
    out.reserve(size);
    for (auto& c : chunks_) {
      out.append(reinterpret_cast<const char*>(c.data()), c.size());
      Bytes().swap(c);  // each chunk's memory goes as soon as it is copied
    }
    return out;
  }

 private:
  static constexpr std::size_t kChunk = 1u << 20;
  std::vector<Bytes> chunks_;
};

}  // namespace

std::string Repository::get_text(const std::string& key) {
  ChunkSink sink;
  get_object(key, sink);
  return sink.joined();
}

Digest Repository::stored_digest(const std::string& key) {
  // One read of one version (size and trailer together): a HEAD then a ranged GET could pair the size
  // of one version with the trailer of a newer one while another writer replaces the object.
  ObjectTail tail = storage_->get_tail(key, kObjectTrailerSize);
  if (tail.size < kObjectHeaderSize + kObjectTrailerSize) {
    throw Error(ErrorKind::Corruption, describe() + "/" + key + ": object too small (" +
                                           std::to_string(tail.size) + " bytes)");
  }
  return parse_trailer(tail.bytes, describe() + "/" + key);
}

Digest Repository::claim_of(const std::string& key, const Digest& plain, bool keyed) {
  if (!keyed) return plain;
  const MasterKey* k = read_key();
  if (k == nullptr) {
    throw Error(ErrorKind::Auth, describe() + "/" + key +
                                     ": the stored object is encrypted but no encryption key is configured");
  }
  return keyed_claim(*k, plain, key);
}

}  // namespace pgvault
