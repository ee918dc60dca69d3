// The "fs" storage backend: a repository in a local directory (or a mounted network filesystem).
// Objects are files under the root; keys map to relative paths. put() is AtomicFileWriter (temp file,
// fsync, rename or no-replace link, fsync directory), so readers never see a partial object.
#pragma once

#include <memory>
#include <string>

#include "common/storage.h"

namespace pgvault {

std::unique_ptr<Storage> make_fs_storage(const std::string& root);

}  // namespace pgvault
