// Where S3 connections take their trusted certificates from (storage/s3/tls_trust.h).
#include "common/storage/s3/tls_trust.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/test_support.h"

using namespace pgvault;
using pgvault::testing::TempDir;

namespace {

void touch(const std::string& path) { std::ofstream(path) << "x"; }

TEST(TlsTrust, HashedCertificateLinksAreRecognised) {
  TempDir dir;
  EXPECT_FALSE(has_hashed_certificates(dir / "missing"));
  touch(dir / "ca-certificates.crt");
  touch(dir / "Some_Root_CA.pem");
  touch(dir / "0123abcd.x");
  touch(dir / "0123abcg.0");
  EXPECT_FALSE(has_hashed_certificates(dir.path()));
  touch(dir / "5ad8a5d6.12");
  EXPECT_TRUE(has_hashed_certificates(dir.path()));
}

TEST(TlsTrust, TheConfiguredCaFileWinsAsAFileOrADirectory) {
  TempDir dir;
  touch(dir / "ca.pem");
  TrustSource f = trust_source(dir / "ca.pem", "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt");
  EXPECT_FALSE(f.directory);
  EXPECT_EQ(f.path, dir / "ca.pem");
  TrustSource d = trust_source(dir.path(), "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt");
  EXPECT_TRUE(d.directory);
  EXPECT_EQ(d.path, dir.path());
}

// Without ca_file: the system's hashed directory (one issuer read per connection) rather than parsing
// the whole bundle, but only when the directory really holds hashed links; else the bundle.
TEST(TlsTrust, WithoutCaFileTheHashedDirectoryIsPreferredToTheBundle) {
  TempDir dir;
  std::filesystem::create_directory(dir / "certs");
  TrustSource empty_dir = trust_source("", dir / "certs", "/some/bundle.crt");
  EXPECT_FALSE(empty_dir.directory);
  EXPECT_EQ(empty_dir.path, "/some/bundle.crt");
  touch(dir / "certs/5ad8a5d6.0");
  TrustSource hashed = trust_source("", dir / "certs", "/some/bundle.crt");
  EXPECT_TRUE(hashed.directory);
  EXPECT_EQ(hashed.path, dir / "certs");
  EXPECT_EQ(trust_source("", "", "").path, "");  // nothing known: OpenSSL's default paths
}

}  // namespace
