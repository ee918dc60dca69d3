// The storage factory: the backend a configuration names ([repository] type "fs" or "s3"), with its
// settings mapped from the [repository] keys. Makes no request and touches no file (the fs backend
// checks its path on first use).
#pragma once

#include <memory>

#include "common/config/config.h"
#include "common/storage/storage.h"

namespace pgvault {

// Opens the configured backend ("fs" or "s3"). Throws Config naming the configuration file for another
// type, and what make_s3_storage() throws for bad s3 settings.
std::unique_ptr<Storage> open_storage(const Config& config);

}  // namespace pgvault
