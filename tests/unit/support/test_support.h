// Test support: temporary directories, an in-memory storage, and a fault-injecting storage wrapper.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include <gtest/gtest.h>

#include "common/base/errors.h"
#include "common/storage/storage.h"

// EXPECT_THROW_KIND(statement, ErrorKind::X): the statement throws a pgvault::Error of that kind (any
// other outcome fails the test and says what happened instead).
#define EXPECT_THROW_KIND(statement, expected_kind)                                                     \
  do {                                                                                                  \
    try {                                                                                               \
      statement;                                                                                        \
      ADD_FAILURE() << #statement " did not throw (expected " #expected_kind ")";                       \
    } catch (const ::pgvault::Error& e_) {                                                              \
      EXPECT_EQ(e_.kind(), expected_kind) << #statement " threw: " << e_.what();                        \
    }                                                                                                   \
  } while (0)

namespace pgvault::testing {

// Runs f, expecting a pgvault::Error of `kind` whose message contains `needle`.
inline void expect_error(const std::function<void()>& f, ErrorKind kind, const std::string& needle = "") {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(kind_name(e.kind()), kind_name(kind)) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    return;
  }
  ADD_FAILURE() << "no error thrown (expected " << kind_name(kind) << ")";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pgvault-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Every object in a map; put is atomic at commit.
class MemoryStorage : public Storage {
 public:
  std::string describe() const override { return "memory:"; }

  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    struct W : ObjectWriter {
      MemoryStorage* s;
      std::string key;
      bool if_absent;
      Bytes data;
      bool done = false;
      void write(ByteView d) override { data.insert(data.end(), d.begin(), d.end()); }
      void commit() override {
        std::lock_guard g(s->mu);
        if (if_absent && s->objects.count(key)) throw Error(ErrorKind::Duplicate, key + " exists");
        s->objects[key] = data;
        done = true;
      }
      void abort() noexcept override { done = true; }
    };
    auto w = std::make_unique<W>();
    w->s = this;
    w->key = key;
    w->if_absent = opts.if_absent;
    return w;
  }

  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override {
    std::lock_guard g(mu);
    auto it = objects.find(key);
    if (it == objects.end()) throw Error(ErrorKind::NotFound, key + " not found");
    Bytes slice = it->second;
    if (range) {
      std::uint64_t off = std::min<std::uint64_t>(range->offset, slice.size());
      std::uint64_t end = range->length ? std::min<std::uint64_t>(slice.size(), off + *range->length) : slice.size();
      slice = Bytes(slice.begin() + off, slice.begin() + end);
    }
    struct S : Source {
      Bytes d;
      std::size_t pos = 0;
      std::size_t read(std::span<std::uint8_t> buf) override {
        std::size_t n = std::min(buf.size(), d.size() - pos);
        std::copy_n(d.begin() + pos, n, buf.begin());
        pos += n;
        return n;
      }
    };
    auto s = std::make_unique<S>();
    s->d = std::move(slice);
    return s;
  }

  std::optional<ObjectInfo> head(const std::string& key) override {
    std::lock_guard g(mu);
    auto it = objects.find(key);
    if (it == objects.end()) return std::nullopt;
    return ObjectInfo{key, it->second.size(), 0};
  }

  std::vector<ObjectInfo> list(const std::string& prefix) override {
    std::lock_guard g(mu);
    std::vector<ObjectInfo> out;
    for (auto& [k, v] : objects) {
      if (k.compare(0, prefix.size(), prefix) == 0) out.push_back({k, v.size(), 0});
    }
    return out;
  }

  void remove(const std::string& key) override {
    std::lock_guard g(mu);
    objects.erase(key);
  }

  std::mutex mu;
  std::map<std::string, Bytes> objects;
};

// A memory store whose create-if-absent puts are checked later, as on an S3 store without conditional
// writes: the commit of a put with PutOptions::confirm_later hands it a check that passes while the stored
// object is that put's bytes (as an ETag compare does) and records the key in `checked`; it throws
// Duplicate when the object is another's (replaced, or rewritten since) or its key is `refuse`, and
// Transient when it is gone. create_confirmed().
class CheckedLaterStorage : public MemoryStorage {
 public:
  bool create_confirmed() override { return true; }

  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    auto inner = MemoryStorage::put(key, opts);
    if (!opts.if_absent || opts.confirm_later == nullptr) return inner;
    struct W : ObjectWriter {
      std::unique_ptr<ObjectWriter> inner;
      CheckedLaterStorage* s = nullptr;
      std::string key;
      DeferredConfirms* later = nullptr;
      Bytes data;
      void write(ByteView d) override {
        data.insert(data.end(), d.begin(), d.end());
        inner->write(d);
      }
      void commit() override {
        inner->commit();
        later->add([s = s, key = key, data = std::move(data)] { s->check(key, data); });
      }
      void abort() noexcept override { inner->abort(); }
    };
    auto w = std::make_unique<W>();
    w->inner = std::move(inner);
    w->s = this;
    w->key = key;
    w->later = opts.confirm_later;
    return w;
  }

  std::string refuse;
  std::vector<std::string> checked;  // under mu

 private:
  void check(const std::string& key, const Bytes& ours) {
    std::lock_guard g(mu);
    auto it = objects.find(key);
    if (it == objects.end()) throw Error(ErrorKind::Transient, key + ": the object vanished right after its upload");
    if (key == refuse || it->second != ours) throw Error(ErrorKind::Duplicate, key + ": another writer stored this key");
    checked.push_back(key);
  }
};

// Forwards to another storage; a test sets `fail` to make chosen calls throw.
class FaultStorage : public Storage {
 public:
  explicit FaultStorage(std::unique_ptr<Storage> inner) : owned_(std::move(inner)), inner_(*owned_) {}
  // Called with the operation name ("put", "get", "head", "list", "remove") and key; may throw.
  std::function<void(const std::string& op, const std::string& key)> fail = [](auto&, auto&) {};

  std::string describe() const override { return "fault:" + inner_.describe(); }
  std::unique_ptr<ObjectWriter> put(const std::string& key, const PutOptions& opts) override {
    fail("put", key);
    return inner_.put(key, opts);
  }
  std::unique_ptr<Source> get(const std::string& key, std::optional<ByteRange> range) override {
    fail("get", key);
    return inner_.get(key, range);
  }
  std::optional<ObjectInfo> head(const std::string& key) override {
    fail("head", key);
    return inner_.head(key);
  }
  std::vector<ObjectInfo> list(const std::string& prefix) override {
    fail("list", prefix);
    return inner_.list(prefix);
  }
  void remove(const std::string& key) override {
    fail("remove", key);
    inner_.remove(key);
  }

 private:
  std::unique_ptr<Storage> owned_;
  Storage& inner_;
};

}  // namespace pgvault::testing
