#include "common/storage/storage.h"

namespace pgvault {

Bytes read_all(Storage& storage, const std::string& key) {
  auto src = storage.get(key);
  Bytes out;
  VectorSink sink(out);
  pump(*src, sink, 64 * 1024);
  return out;
}

void DeferredConfirms::add(std::function<void()> check) {
  std::lock_guard lock(mu_);
  checks_.push_back(std::move(check));
}

void DeferredConfirms::run() {
  std::vector<std::function<void()>> checks;
  {
    std::lock_guard lock(mu_);
    checks.swap(checks_);
  }
  for (const auto& check : checks) check();
}

ObjectTail Storage::get_tail(const std::string& key, std::size_t n) {
  auto src = get(key);
  ObjectTail tail;
  Bytes buf(64 * 1024);
  for (;;) {
    std::size_t got = src->read(buf);
    if (got == 0) break;
    tail.size += got;
    tail.bytes.insert(tail.bytes.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
    if (tail.bytes.size() > n) tail.bytes.erase(tail.bytes.begin(), tail.bytes.end() - static_cast<std::ptrdiff_t>(n));
  }
  return tail;
}

void write_all(Storage& storage, const std::string& key, ByteView data, const PutOptions& opts) {
  PutOptions o = opts;
  o.size = data.size();
  auto w = storage.put(key, o);
  w->write(data);
  w->commit();
}

}  // namespace pgvault
