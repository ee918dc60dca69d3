#include "common/storage.h"

namespace pgvault {

Bytes read_all(Storage& storage, const std::string& key) {
  auto src = storage.get(key);
  Bytes out;
  VectorSink sink(out);
  pump(*src, sink, 64 * 1024);
  return out;
}

void write_all(Storage& storage, const std::string& key, ByteView data, const PutOptions& opts) {
  PutOptions o = opts;
  o.size = data.size();
  auto w = storage.put(key, o);
  w->write(data);
  w->commit();
}

}  // namespace pgvault
