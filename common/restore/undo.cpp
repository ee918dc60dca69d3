// Undo: on a failure after the data directory was prepared, everything written is removed again.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/restore/restore_steps.h"

namespace pgvault::restore_detail {

namespace fsys = std::filesystem;

void Undo::run() noexcept {
  std::vector<std::string> failures;
  for (const auto& p : remove) {
    std::error_code ec;
    fsys::remove_all(p, ec);
    if (ec) failures.push_back(p + ": " + ec.message());
  }
  std::error_code ec;
  if (created_pgdata) {
    fsys::remove_all(pgdata, ec);
  } else {
    for (const auto& e : fsys::directory_iterator(pgdata, ec)) {
      std::error_code ec2;
      if (e.path().filename() == kRestoreMarker) continue;
      fsys::remove_all(e.path(), ec2);
      if (ec2) failures.push_back(e.path().string() + ": " + ec2.message());
    }
    if (failures.empty()) fsys::remove(pgdata + "/" + kRestoreMarker, ec);
  }
  if (ec) failures.push_back(pgdata + ": " + ec.message());
  if (!failures.empty()) {
    spdlog::error("could not remove the partly restored files ({}); {} is NOT usable: delete it by hand",
                  failures.front(), pgdata);
  } else {
    spdlog::info("removed the partly restored files from {}", pgdata);
  }
}

}  // namespace pgvault::restore_detail
