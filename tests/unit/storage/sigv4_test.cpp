// The SigV4 signer against the published AWS Signature Version 4 test suite (aws-sig-v4-test-suite):
// credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service "service". Each case checks the
// canonical request, the string to sign and the Authorization header exactly as published.
#include "common/storage/s3/sigv4.h"

#include <gtest/gtest.h>

namespace pgvault::sigv4 {
namespace {

constexpr const char* kDate = "20150830T123600Z";
constexpr const char* kEmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kToken =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTfl"
    "fKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HF"
    "vlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKT"
    "r4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

Credentials creds() { return {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""}; }

Signed sign_suite(const Request& r) { return sign(r, creds(), "us-east-1", "service", kDate); }

std::string authz(const std::string& signed_headers, const std::string& sig) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=" +
         signed_headers + ", Signature=" + sig;
}

std::string sts(const std::string& creq_hash) {
  return std::string("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n") +
         creq_hash;
}

Pairs base_headers() { return {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kDate}}; }

TEST(SigV4Suite, GetVanilla) {
  Request r{"GET", "/", {}, base_headers(), kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.canonical_request,
            std::string("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n") +
                kEmptyHash);
  EXPECT_EQ(s.string_to_sign, sts("bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"));
  EXPECT_EQ(s.authorization,
            authz("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST(SigV4Suite, GetVanillaQueryOrderKeyCase) {
  Request r{"GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, base_headers(), kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.canonical_request,
            std::string("GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
                        "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n") +
                kEmptyHash);
  EXPECT_EQ(s.string_to_sign, sts("816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0"));
  EXPECT_EQ(s.authorization,
            authz("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

TEST(SigV4Suite, GetVanillaQueryOrderKey) {
  // Same name twice: sorted by value (uppercase before lowercase).
  Request r{"GET", "/", {{"Param1", "value2"}, {"Param1", "Value1"}}, base_headers(), kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.string_to_sign, sts("704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89"));
  EXPECT_EQ(s.authorization,
            authz("host;x-amz-date", "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"));
}

TEST(SigV4Suite, GetUnreserved) {
  const std::string path = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  Request r{"GET", path, {}, base_headers(), kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.canonical_request, "GET\n" + path +
                                     "\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                                     "host;x-amz-date\n" + kEmptyHash);
  EXPECT_EQ(s.string_to_sign, sts("6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9"));
  EXPECT_EQ(s.authorization,
            authz("host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"));
}

TEST(SigV4Suite, GetHeaderKeyDuplicate) {
  Request r{"GET",
            "/",
            {},
            {{"Host", "example.amazonaws.com"},
             {"My-Header1", "value2"},
             {"My-Header1", "value2"},
             {"My-Header1", "value1"},
             {"X-Amz-Date", kDate}},
            kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.canonical_request,
            std::string("GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
                        "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n") +
                kEmptyHash);
  EXPECT_EQ(s.string_to_sign, sts("dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c"));
  EXPECT_EQ(s.authorization, authz("host;my-header1;x-amz-date",
                                   "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"));
}

TEST(SigV4Suite, GetHeaderValueOrder) {
  Request r{"GET",
            "/",
            {},
            {{"Host", "example.amazonaws.com"},
             {"My-Header1", "value4"},
             {"My-Header1", "value1"},
             {"My-Header1", "value3"},
             {"My-Header1", "value2"},
             {"X-Amz-Date", kDate}},
            kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.string_to_sign, sts("31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86"));
  EXPECT_EQ(s.authorization, authz("host;my-header1;x-amz-date",
                                   "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"));
}

TEST(SigV4Suite, GetHeaderValueTrim) {
  Request r{"GET",
            "/",
            {},
            {{"Host", "example.amazonaws.com"},
             {"My-Header1", " value1"},
             {"My-Header2", " \"a   b   c\""},
             {"X-Amz-Date", kDate}},
            kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.canonical_request,
            std::string("GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
                        "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n") +
                kEmptyHash);
  EXPECT_EQ(s.string_to_sign, sts("a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7"));
  EXPECT_EQ(s.authorization, authz("host;my-header1;my-header2;x-amz-date",
                                   "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"));
}

TEST(SigV4Suite, PostXWwwFormUrlencoded) {
  const std::string body = "Param1=value1";
  Request r{"POST",
            "/",
            {},
            {{"Content-Type", "application/x-www-form-urlencoded"},
             {"Host", "example.amazonaws.com"},
             {"X-Amz-Date", kDate}},
            sha256_hex(as_bytes(body))};
  EXPECT_EQ(r.payload_hash, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  auto s = sign_suite(r);
  EXPECT_EQ(s.canonical_request,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
            "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  EXPECT_EQ(s.string_to_sign, sts("42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"));
  EXPECT_EQ(s.authorization, authz("content-type;host;x-amz-date",
                                   "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
}

TEST(SigV4Suite, PostStsHeaderBefore) {
  Request r{"POST",
            "/",
            {},
            {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kDate}, {"X-Amz-Security-Token", kToken}},
            kEmptyHash};
  auto s = sign_suite(r);
  EXPECT_EQ(s.canonical_request,
            std::string("POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
                        "x-amz-security-token:") +
                kToken + "\n\nhost;x-amz-date;x-amz-security-token\n" + kEmptyHash);
  EXPECT_EQ(s.authorization, authz("host;x-amz-date;x-amz-security-token",
                                   "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"));
}

TEST(SigV4Encode, UriEncode) {
  EXPECT_EQ(uri_encode("a b/c~d+e=f:g", true), "a%20b/c~d%2Be%3Df%3Ag");
  EXPECT_EQ(uri_encode("a/b", false), "a%2Fb");
  EXPECT_EQ(uri_encode("\xc3\xa9", true), "%C3%A9");
}

TEST(SigV4Encode, CanonicalQueryEmptyValueAndEncoding) {
  EXPECT_EQ(canonical_query({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(canonical_query({{"prefix", "a b/c"}, {"list-type", "2"}}), "list-type=2&prefix=a%20b%2Fc");
}

TEST(SigV4Hash, Md5AndSha) {
  EXPECT_EQ(md5_hex(as_bytes("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_base64(as_bytes("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(sha256_hex(as_bytes("")), kEmptyHash);
}

}  // namespace
}  // namespace pgvault::sigv4
