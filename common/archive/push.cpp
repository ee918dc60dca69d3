// push_wal (archive.h): one WAL file into the repository, as named steps.
#include <spdlog/spdlog.h>

#include <fstream>
#include <memory>
#include <optional>

#include "common/archive/archive.h"
#include "common/archive/wal_checks.h"
#include "common/archive/wal_index_push.h"
#include "common/base/errors.h"
#include "common/base/fs.h"

namespace pgvault {

namespace {

// A sink that only counts: decoding into it verifies an object without keeping it.
class DiscardSink final : public Sink {
 public:
  void write(ByteView) override {}
  void finish() override {}
};

// The major version from PG_VERSION in the working directory (the data directory under
// archive_command), else from the WAL page magic.
int detect_pg_version(std::uint16_t magic) {
  std::ifstream in("PG_VERSION");
  int v = 0;
  if (in >> v && v >= 10) return v;
  return pg_version_for_wal_magic(magic);
}

Digest file_digest(const std::string& path) {
  FileSource src(path);
  Sha256 h;
  Bytes buf(1 << 20);
  std::uint64_t size = 0;
  for (;;) {
    std::size_t n = src.read(buf);
    if (n == 0) break;
    h.update(ByteView(buf.data(), n));
    size += n;
  }
  return Digest{h.final(), size};
}

WalFileName wal_name_of(const std::string& path) {
  auto name = WalFileName::parse(base_name(path));
  if (!name) {
    throw Error(ErrorKind::InvalidInput,
                "\"" + path + "\" is not a WAL file name (expected a segment such as 000000010000000000000001, "
                "a .partial, .history or .backup file)");
  }
  return *name;
}

std::unique_ptr<FileSource> open_wal_file(const std::string& path) {
  try {
    return std::make_unique<FileSource>(path);
  } catch (const Error& e) {
    throw Error(ErrorKind::InvalidInput, std::string("cannot read WAL file: ") + e.what());
  }
}

// A segment's first page header must describe a whole segment of this file's size, of the repository's
// database system and segment size (the identity is created from it on first use), at the position and
// on a timeline its name allows: what wal-fetch requires before it hands a file over (check_segment_header),
// so nothing is archived that a recovery would refuse, or that would block the real file's name.
void check_segment(Repository& repo, const WalFileName& name, const std::string& path, FileSource& src) {
  Bytes page = read_first_page(src);
  WalLongHeader h;
  try {
    h = parse_wal_long_header(page, path);
  } catch (const Error& e) {
    throw Error(ErrorKind::InvalidInput, e.what());
  }
  if (src.file_size() != h.segment_size) {
    throw Error(ErrorKind::InvalidInput, path + " is " + std::to_string(src.file_size()) +
                                             " bytes but its header says the segment size is " +
                                             std::to_string(h.segment_size) + ": refusing a truncated segment");
  }
  // No check of h.timeline against the name: the first segment of a new timeline starts as a copy
  // of the old timeline's segment, so its first page header carries the old timeline.
  Identity proposed;
  proposed.system_identifier = h.system_identifier;
  proposed.pg_version = detect_pg_version(h.magic);
  proposed.wal_segment_size = h.segment_size;
  Identity stored = repo.ensure_identity(proposed);
  if (stored.wal_segment_size != h.segment_size) {
    throw Error(ErrorKind::Foreign, path + ": segment size " + std::to_string(h.segment_size) +
                                        " differs from the repository's " + std::to_string(stored.wal_segment_size));
  }
  if (auto why = check_segment_header(h, name, stored.wal_segment_size, stored.system_identifier)) {
    const ErrorKind kind = why->kind() == ErrorKind::Foreign ? ErrorKind::Foreign : ErrorKind::InvalidInput;
    throw Error(kind, path + ": " + why->what() + "; not archived (a recovery would refuse it)");
  }
}

Error different_content(const std::string& file_name, const Digest& stored, const Digest& local,
                        const std::string& where) {
  return Error(ErrorKind::Duplicate, file_name + " is already archived with different content (stored: " +
                                         stored.describe() + "; local: " + local.describe() +
                                         "); refusing to overwrite " + where);
}

// The key holds an object already: PostgreSQL re-archives after a crash, which must succeed when the
// content is the same (verified by decoding it), and repairs a stored copy that claims this content but
// does not verify. Duplicate when the content differs.
PushResult push_again(Repository& repo, const std::string& path, const std::string& key, const std::string& where) {
  const std::string file_name = base_name(path);
  // The trailer of an encrypted object holds a keyed claim, not the SHA-256: compare like with like.
  Digest plain = file_digest(path);
  Digest stored = repo.stored_digest(key);
  Digest local = repo.claim_of(key, plain, stored.keyed);
  if (!(stored == local)) throw different_content(file_name, stored, local, where);
  DiscardSink discard;
  try {
    // The decoded digest, not only the trailer read above, must be ours: a writer racing with this
    // call may have replaced the object in between (a store without conditional writes).
    Digest decoded = repo.get_object(key, discard);
    if (!(decoded == plain)) throw different_content(file_name, decoded, plain, where);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Corruption) throw;
    // The stored copy claims this very content but does not verify: replace it with the good file.
    spdlog::warn("{}: stored copy is corrupt ({}); rewriting it from {}", where, e.what(), path);
    FileSource again(path);
    repo.put_object(key, again, PutOptions{.if_absent = false, .size = again.file_size()});
    return {PushOutcome::Repaired, plain};
  }
  spdlog::info("{} was already archived with identical content ({})", file_name, local.describe());
  return {PushOutcome::AlreadyStored, plain};
}

}  // namespace

PushResult push_wal(Repository& repo, const std::string& path) {
  const WalFileName name = wal_name_of(path);
  // Load and check the encryption key before anything is written, so a bad key changes nothing.
  repo.write_key();
  std::unique_ptr<FileSource> src = open_wal_file(path);
  if (has_page_header(name)) {
    check_segment(repo, name, path, *src);
    src = std::make_unique<FileSource>(path);  // start again at byte 0 (the header is in the page cache)
  }
  const std::string key = keys::wal(name);
  const std::string where = repo.describe() + "/" + key;
  // A whole segment is scanned for its WAL index as it is uploaded (the index is written once the
  // segment is durable; a retried push, which finds the segment stored, writes it again).
  const bool indexed = name.kind == WalFileKind::Segment;
  const auto segment_size = static_cast<std::uint32_t>(src->file_size());
  std::optional<ScanningSource> scan;
  if (indexed) scan.emplace(*src, name, segment_size, path);
  Source& upload = indexed ? static_cast<Source&>(*scan) : *src;
  // No HEAD first: the create-if-absent put is the existence check (a duplicate is the rare case, a
  // re-archive after a crash), which saves a round trip per call on S3.
  // A put that returns stored these bytes: atomically (fs, S3 with conditional writes) or confirmed
  // after the upload (S3 without them: common/storage/s3/s3.h). Duplicate: another call's bytes are there.
  std::optional<Digest> stored;
  try {
    stored = repo.put_object(key, upload, PutOptions{.if_absent = true, .size = src->file_size()});
    spdlog::debug("archived {} to {}", base_name(path), where);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Duplicate) throw;
    // Already stored (earlier or concurrently): compare below.
  }
  if (stored) {
    if (indexed) store_wal_index(repo, name, *scan);
    return {PushOutcome::Stored, *stored};
  }
  PushResult again = push_again(repo, path, key, where);
  if (indexed) store_wal_index_of_file(repo, name, path, segment_size);
  return again;
}

}  // namespace pgvault
