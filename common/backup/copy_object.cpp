// backup-copy's object copy (copy_object.h): decode at the source, verify, re-encode at the destination.
#include "common/backup/copy_object.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <map>
#include <memory>

#include "common/backup/interrupt.h"
#include "common/base/byte_pipe.h"
#include "common/base/errors.h"
#include "common/base/hex.h"
#include "common/repo/backup_bundles.h"
#include "common/repo/bundle_split.h"
#include "common/repo/layout.h"

namespace pgvault {

namespace {

constexpr std::size_t kPipeBytes = 8u << 20;

// A bundle's files against the manifest: the first file whose checksum differs, or a bundle that ends
// inside a file, stops the copy (an error naming the file).
class BundleCheck final : public BundleVisitor {
 public:
  explicit BundleCheck(std::string where) : where_(std::move(where)) {}
  void on_begin(const ManifestFile&) override {}
  void on_data(const ManifestFile&, ByteView) override {}
  void on_end(const ManifestFile& f, const std::string& mismatch) override {
    if (!mismatch.empty()) throw Error(ErrorKind::Corruption, where_ + ": file " + f.path + ": " + mismatch);
  }
  void on_extra(std::uint64_t) override {}
  void on_truncated(std::uint64_t pos, const ManifestFile& inside) override {
    throw Error(ErrorKind::Corruption,
                where_ + ": ends after " + std::to_string(pos) + " bytes, inside file " + inside.path);
  }

 private:
  std::string where_;
};

// A WAL segment's size and first page header against its name and the identity.
class SegmentCheck final : public Sink {
 public:
  SegmentCheck(const WalFileName& name, const Identity& id, std::string where)
      : name_(name), id_(id), where_(std::move(where)) {}
  void write(ByteView d) override {
    if (header_.size() < kWalLongHeaderSize) {
      std::size_t n = std::min(kWalLongHeaderSize - header_.size(), d.size());
      header_.insert(header_.end(), d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
    }
    size_ += d.size();
  }
  void finish() override {
    if (size_ != id_.wal_segment_size) {
      throw Error(ErrorKind::Corruption, where_ + ": segment of " + std::to_string(size_) + " bytes, expected " +
                                             std::to_string(id_.wal_segment_size));
    }
    WalLongHeader h = parse_wal_long_header(header_, where_);
    if (auto bad = check_segment_header(h, name_, id_.wal_segment_size, id_.system_identifier)) throw *bad;
  }

 private:
  WalFileName name_;
  const Identity& id_;
  std::string where_;
  Bytes header_;
  std::uint64_t size_ = 0;
};

// The decoded bytes pass the check (when there is one), then go on to `next` (the pipe, or nowhere).
// finish() comes after the decoder verified everything: only then is `next` closed.
class Tee final : public Sink {
 public:
  Tee(Sink* check, BytePipe* next) : check_(check), next_(next) {}
  void write(ByteView d) override {
    if (check_) check_->write(d);
    if (next_) next_->write(d);
  }
  void finish() override {
    if (check_) check_->finish();
    if (next_) next_->close();
  }

 private:
  Sink* check_;
  BytePipe* next_;
};

// The check for `what` (nullptr: the codec's own verification is all).
std::unique_ptr<Sink> make_check(const ObjectToCopy& what, const Identity& id, const std::string& where,
                                 std::unique_ptr<BundleCheck>& visitor) {
  if (what.bundle_files) {
    visitor = std::make_unique<BundleCheck>(where);
    std::vector<const ManifestFile*> files = *what.bundle_files;
    sort_bundle_files(files, what.backup ? what.backup->label : "", what.bundle);
    return std::make_unique<BundleSplitter>(std::move(files), *visitor);
  }
  if (what.segment) return std::make_unique<SegmentCheck>(*what.segment, id, where);
  return nullptr;
}

// The bundle's plaintext size and SHA-256 against the manifest.
void check_bundle_digest(const ObjectToCopy& what, const Digest& d, const std::string& where) {
  if (!what.backup) return;
  for (const auto& mb : what.backup->bundles) {
    if (mb.index != what.bundle) continue;
    if (mb.plain_size != d.size || (!mb.sha256.empty() && mb.sha256 != to_hex(d.sha256))) {
      throw Error(ErrorKind::Corruption, where + ": plaintext " + d.describe() + ", the manifest says sha256 " +
                                             mb.sha256 + ", " + std::to_string(mb.plain_size) + " bytes");
    }
  }
}


// An object whose stored form the destination would not write (copy_stored gives up on it).
struct OtherStoredForm {};

// Stored bytes of the source: decoded into `tee` (verified), and passed on unchanged into `pipe` once
// the header shows the destination's own form; finish() closes the pipe only after the decoder verified
// every byte.
class StoredTee final : public Sink {
 public:
  StoredTee(const MasterKey* key, const std::string& name, const std::string& where, Tee& tee, BytePipe& pipe,
            const EncodeOptions& want)
      : dec_(tee, key, name, where), pipe_(pipe), want_(want) {}
  void write(ByteView d) override {
    dec_.write(d);
    fed_ += d.size();
    if (!checked_ && fed_ >= kObjectHeaderSize) check_header();
    pipe_.write(d);
  }
  void finish() override {
    dec_.finish();
    if (!checked_) check_header();
    pipe_.close();
  }
  const Digest& digest() const { return dec_.digest(); }

 private:
  void check_header() {
    const ObjectHeader& h = dec_.header();
    const Encryption enc = want_.key ? Encryption::Aes256Gcm : Encryption::None;
    if (h.version != 2 || h.compression != want_.compression || h.encryption != enc ||
        (want_.key && h.chunk_size != want_.chunk_size)) {
      throw OtherStoredForm{};
    }
    checked_ = true;
  }
  ObjectDecoder dec_;
  BytePipe& pipe_;
  const EncodeOptions& want_;
  std::uint64_t fed_ = 0;
  bool checked_ = false;
};

// The object decoded, verified and re-encoded with the destination's settings.
Digest copy_reencoded(Repository& src, const CopyDestination& dst, const std::string& key, Tee& tee,
                      BytePipe& pipe) {
  Digest d;
  read_beside(pipe, [&] { d = src.get_object(key, tee); }, [&] {
    EncodeOptions eo = dst.encode;
    eo.bound_name = key;  // an encrypted object is bound to the key it is stored under
    auto writer = dst.storage->put(key);
    ObjectEncoder enc(*writer, eo);
    pipe.pump_into(enc);  // finish() writes the trailer and commits the writer
  });
  return d;
}

// The object's stored bytes, verified on the way; nullopt when its stored form is not the
// destination's (nothing was committed).
std::optional<Digest> copy_stored(Repository& src, const CopyDestination& dst, const std::string& key, Tee& tee,
                                  BytePipe& pipe) {
  StoredTee stored(src.read_key(), key, src.describe() + "/" + key, tee, pipe, dst.encode);
  try {
    read_beside(pipe, [&] { pump(*src.storage().get(key), stored); }, [&] {
      auto writer = dst.storage->put(key);
      pipe.pump_into(*writer);  // finish() commits, after the pipe was closed by a verified read
    });
  } catch (const OtherStoredForm&) {
    return std::nullopt;
  }
  return stored.digest();
}

}  // namespace

std::vector<const ManifestFile*> files_in_bundle(const BackupManifest& m, std::uint64_t bundle) {
  m.require_files("copying a bundle");
  std::vector<const ManifestFile*> out;
  for (const auto& f : m.files) {
    // An "unchanged" entry stores nothing: its checksum is of the parent's content, no bundle holds it.
    if (f.kind != FileKind::Unchanged && f.bundle == bundle) out.push_back(&f);
  }
  return out;
}

Digest verify_object(Repository& src, const ObjectToCopy& what, const Identity& id) {
  const std::string where = src.describe() + "/" + what.key;
  std::unique_ptr<BundleCheck> visitor;
  std::unique_ptr<Sink> check = make_check(what, id, where, visitor);
  Tee tee(check.get(), nullptr);
  Digest d = src.get_object(what.key, tee);
  if (what.bundle_files) check_bundle_digest(what, d, where);
  return d;
}

CopyDestination copy_destination(Repository& src, Repository& dst) {
  CopyDestination out;
  out.storage = &dst.storage();
  out.where = dst.describe();
  out.encode = dst.encode_options();  // with the smaller zstd window and tables, as base-push's bundles
  const MasterKey* in = src.read_key();
  const MasterKey* to = out.encode.key;
  const Config::CompressionCfg& a = src.config().compression;
  const Config::CompressionCfg& b = dst.config().compression;
  const bool same_key = to ? (in && in->bytes() == to->bytes()) : true;  // unencrypted: any key reads it
  out.stored_bytes = same_key && a.method == b.method && a.level == b.level;
  return out;
}

Digest copy_object(Repository& src, const CopyDestination& dst, const ObjectToCopy& what, const Identity& id) {
  const std::string where = src.describe() + "/" + what.key;
  for (bool stored : {dst.stored_bytes, false}) {
    std::unique_ptr<BundleCheck> visitor;
    std::unique_ptr<Sink> check = make_check(what, id, where, visitor);
    BytePipe pipe(kPipeBytes, [] { check_interrupt(); });
    Tee tee(check.get(), stored ? nullptr : &pipe);  // stored bytes: the decoded ones are only checked
    std::optional<Digest> d = stored ? copy_stored(src, dst, what.key, tee, pipe)
                                     : copy_reencoded(src, dst, what.key, tee, pipe);
    if (!d) continue;  // another stored form: decoded and re-encoded in the next round
    if (what.bundle_files) check_bundle_digest(what, *d, where);
    return *d;
  }
  throw Error(ErrorKind::Internal, where + ": copied neither way");
}

}  // namespace pgvault
