// The storage factory: the backend the [repository] type names, and the refusal of another type.
#include <gtest/gtest.h>

#include "common/storage/factory.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

TEST(StorageFactory, FsTypeOpensTheFilesystemBackendAtPath) {
  testing::TempDir dir;
  Config c;
  c.repository.type = "fs";
  c.repository.path = dir.path();
  auto s = open_storage(c);
  write_all(*s, "a/b", as_bytes("x"));
  EXPECT_EQ(read_all(*s, "a/b"), Bytes{'x'});
  EXPECT_NE(s->describe().find(dir.path()), std::string::npos) << s->describe();
}

TEST(StorageFactory, S3TypeMapsTheRepositoryKeys) {
  Config c;
  c.repository.type = "s3";
  c.repository.bucket = "bkt";
  c.repository.prefix = "some/where";
  c.repository.access_key_id = "AK";
  c.repository.secret_access_key = "SK";
  EXPECT_EQ(open_storage(c)->describe(), "s3://bkt/some/where");  // no request is made
  c.repository.upload_parallel = 0;
  EXPECT_THROW_KIND(open_storage(c), ErrorKind::Config);
}

TEST(StorageFactory, OtherTypesAreAConfigErrorNamingTheFile) {
  Config c;
  c.source = "/etc/pgvault.toml";
  c.repository.type = "gcs";
  try {
    open_storage(c);
    ADD_FAILURE() << "open_storage did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_EQ(std::string(e.what()), "/etc/pgvault.toml: [repository] type \"gcs\" is not supported by this build");
  }
}

}  // namespace
}  // namespace pgvault
