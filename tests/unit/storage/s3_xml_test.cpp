// The minimal XML reader used for S3 answers.
#include "common/storage/s3/s3_xml.h"

#include <gtest/gtest.h>

namespace pgvault::s3xml {
namespace {

TEST(S3Xml, ListBucketResultWithEntitiesAndLookalikeNames) {
  const std::string doc =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>repo</Name>"
      "<KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>a&amp;b==</NextContinuationToken>"
      "<Contents><Key>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &#233; &#x65E5;</Key><Size>12</Size></Contents>"
      "<Contents><Key>plain</Key><Size>0</Size></Contents></ListBucketResult>";
  EXPECT_TRUE(has(doc, "ListBucketResult"));
  EXPECT_EQ(text(doc, "IsTruncated"), "true");
  EXPECT_EQ(text(doc, "NextContinuationToken"), "a&b==");
  auto contents = elements(doc, "Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(text(contents[0], "Key"), "a <b> & \"c\" 'd' \xc3\xa9 \xe6\x97\xa5");  // not <KeyCount>
  EXPECT_EQ(text(contents[0], "Size"), "12");
  EXPECT_EQ(text(contents[1], "Key"), "plain");
}

TEST(S3Xml, ErrorAndMissingAndMalformed) {
  const std::string err = "<Error><Code>NoSuchKey</Code><Message>The key</Message><Key/></Error>";
  EXPECT_EQ(text(err, "Code"), "NoSuchKey");
  EXPECT_EQ(text(err, "Key"), "");
  EXPECT_EQ(text(err, "RequestId"), "");
  EXPECT_EQ(text("<Code>unterminated", "Code"), "");
  EXPECT_EQ(unescape("&bogus; &#xZZ; &"), "&bogus; &#xZZ; &");
}

TEST(S3Xml, EscapeRoundTripAndUrlDecode) {
  const std::string key = "a&b<c>\"d'e\r";
  EXPECT_EQ(unescape(escape(key)), key);
  EXPECT_EQ(url_decode("a%20b%2Bc+d%C3%BC%"), "a b+c d\xc3\xbc%");
}

}  // namespace
}  // namespace pgvault::s3xml
