#include "common/archive/wal_checks.h"

#include "common/base/errors.h"

namespace pgvault {

Error no_identity(Repository& repo) {
  return Error(ErrorKind::Config, "repository " + repo.describe() + " has no " + keys::identity() +
                                      ": wrong path or bucket, or nothing was ever archived there");
}

std::optional<Identity> matching_identity(Repository& repo, std::optional<std::uint64_t> control_sysid) {
  auto id = repo.identity();
  if (id && control_sysid && id->system_identifier != *control_sysid) {
    throw Error(ErrorKind::Foreign, "repository " + repo.describe() + " belongs to database system " +
                                        std::to_string(id->system_identifier) + ", but global/pg_control says " +
                                        std::to_string(*control_sysid) + ": wrong repository for this cluster");
  }
  return id;
}

Identity checked_identity(Repository& repo, std::optional<std::uint64_t> control_sysid) {
  auto id = matching_identity(repo, control_sysid);
  if (!id) throw no_identity(repo);
  return *id;
}

bool has_page_header(const WalFileName& name) {
  return name.kind == WalFileKind::Segment || name.kind == WalFileKind::Partial;
}

void check_hand_over(ByteView header, std::uint64_t size, const WalFileName& name, std::uint32_t seg_size,
                     std::uint64_t sysid, const std::string& where) {
  if (size != seg_size) {
    throw Error(ErrorKind::Corruption, where + ": " + std::to_string(size) + " bytes, expected a whole segment of " +
                                           std::to_string(seg_size));
  }
  WalLongHeader h = parse_wal_long_header(header, where);
  if (auto bad = check_segment_header(h, name, seg_size, sysid)) throw Error(bad->kind(), where + ": " + bad->what());
}

Bytes read_first_page(Source& src) {
  Bytes page(kWalLongHeaderSize);
  std::size_t got = 0;
  while (got < page.size()) {
    std::size_t n = src.read(std::span(page).subspan(got));
    if (n == 0) break;
    got += n;
  }
  page.resize(got);
  return page;
}

}  // namespace pgvault
