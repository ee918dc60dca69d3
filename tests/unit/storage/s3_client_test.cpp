// The S3 client over a scripted transport (s3_fake_transport.h), no server: retries and their bound,
// the status -> ErrorKind mapping, create-if-absent (If-None-Match, the 501 fallback and its cache, a
// lost answer), and multipart in s3_multipart_test.cpp. The same code runs against Swift in tests/integration/test_s3_*.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "common/storage/s3/s3.h"
#include "s3_fake_transport.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::FakeTransport;
using testing::Fixture;
using testing::fake_s3_options;
using testing::quoted;
using testing::network_failure;
using testing::reply;
using testing::s3_error;
using testing::SeenRequest;

void put_bytes(Storage& s, const std::string& key, const std::string& body, bool if_absent) {
  PutOptions po;
  po.if_absent = if_absent;
  po.size = body.size();
  auto w = s.put(key, po);
  w->write(as_bytes(body));
  w->commit();
}

// --- retries -------------------------------------------------------------------------------------------

TEST(S3Client, RetriesServerErrorsThrottlingTimeoutsAndResetsThenSucceeds) {
  Fixture f;
  f.t->then(s3_error(500, "InternalError"));
  f.t->then(s3_error(503, "SlowDown"));
  f.t->then(s3_error(429, "TooManyRequests"));
  f.t->then(network_failure(CURLE_OPERATION_TIMEDOUT));
  f.t->then(network_failure(CURLE_RECV_ERROR));  // connection reset
  f.t->then(reply(200, "", {{"content-length", "42"}}));
  auto info = f.s->head("a/b");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, 42u);
  EXPECT_EQ(f.t->seen().size(), 6u);
  for (const auto& r : f.t->seen()) EXPECT_EQ(r.url, "http://s3.test:9000/bkt/repo/a/b");
}

TEST(S3Client, RetriesAreBoundedByMaxRetries) {
  S3Options o = fake_s3_options();
  o.max_retries = 2;
  Fixture f(o);
  f.t->route(s3_error(503, "SlowDown"));
  try {
    f.s->head("k");
    ADD_FAILURE() << "head did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Transient);
    EXPECT_NE(std::string(e.what()).find("giving up after 3 attempts"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("HTTP 503 SlowDown"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.t->seen().size(), 3u);  // the first attempt and two retries
}

TEST(S3Client, ClientErrorsAndUnknownNetworkFailuresAreNotRetried) {
  Fixture f;
  f.t->then(s3_error(400, "InvalidArgument", "bad"));
  EXPECT_THROW_KIND(f.s->head("k"), ErrorKind::Internal);
  EXPECT_EQ(f.t->seen().size(), 1u);
  f.t->then(network_failure(CURLE_UNSUPPORTED_PROTOCOL));
  EXPECT_THROW_KIND(f.s->head("k"), ErrorKind::Transient);
  EXPECT_EQ(f.t->seen().size(), 2u);
  f.t->then(network_failure(CURLE_PEER_FAILED_VERIFICATION));
  EXPECT_THROW_KIND(f.s->head("k"), ErrorKind::Config);
  EXPECT_EQ(f.t->seen().size(), 3u);
}

// --- status mapping ------------------------------------------------------------------------------------

TEST(S3Client, StatusesMapToErrorKinds) {
  Fixture f;
  f.t->then(s3_error(403, "SignatureDoesNotMatch", "no"));
  try {
    f.s->head("k");
    ADD_FAILURE() << "head did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Auth);
    EXPECT_EQ(std::string(e.what()),
              "s3 head s3://bkt/repo/k: HTTP 403 SignatureDoesNotMatch: no (check secret_access_key)");
  }
  f.t->then(s3_error(404, "NoSuchKey"));
  EXPECT_THROW_KIND(f.s->get("k", std::nullopt), ErrorKind::NotFound);
  f.t->then(s3_error(404, "NoSuchBucket"));
  EXPECT_THROW_KIND(f.s->list(""), ErrorKind::Config);
  f.t->then(s3_error(409, "OperationAborted"));
  EXPECT_THROW_KIND(f.s->remove("k"), ErrorKind::Conflict);
  f.t->then(s3_error(301, "PermanentRedirect"));
  EXPECT_THROW_KIND(f.s->list(""), ErrorKind::Config);
}

TEST(S3Client, HeadOfAMissingObjectIsNoObject) {
  Fixture f;
  f.t->then(reply(404));
  EXPECT_FALSE(f.s->head("absent"));
}

// --- create-if-absent ----------------------------------------------------------------------------------

TEST(S3Client, ConditionalPutAnswered412IsDuplicate) {
  Fixture f;
  f.t->then(reply(404));                                  // HEAD: absent
  f.t->then(s3_error(412, "PreconditionFailed"));         // PUT If-None-Match: * lost the race
  EXPECT_THROW_KIND(put_bytes(*f.s, "k", "body", true), ErrorKind::Duplicate);
  auto seen = f.t->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "HEAD");
  EXPECT_EQ(seen[1].method, "PUT");
  EXPECT_EQ(seen[1].header("if-none-match"), "*");
  EXPECT_TRUE(seen[1].expect_continue);  // the first conditional PUT is a probe
  EXPECT_EQ(seen[1].body, "body");
}

TEST(S3Client, ConditionalPutAnswered409IsConflictNotDuplicate) {
  // AWS answers 409 ConditionalRequestConflict to a conditional write racing another: the client does
  // not take it for "exists" (the other write may still fail); it reports a Conflict.
  Fixture f;
  f.t->then(reply(404));
  f.t->then(s3_error(409, "ConditionalRequestConflict"));
  EXPECT_THROW_KIND(put_bytes(*f.s, "k", "body", true), ErrorKind::Conflict);
  EXPECT_EQ(f.t->seen().size(), 2u);
}

TEST(S3Client, ExistingObjectIsDuplicateBeforeAnyUpload) {
  Fixture f;
  f.t->then(reply(200, "", {{"content-length", "4"}}));  // HEAD: present
  EXPECT_THROW_KIND(put_bytes(*f.s, "k", "body", true), ErrorKind::Duplicate);
  EXPECT_EQ(f.t->whats(), std::vector<std::string>{"HEAD"});
}

TEST(S3Client, LostAnswerToAConditionalPutIsRecognisedByItsEtag) {
  // The first PUT reached the store, its answer was lost; the retry gets 412. The stored ETag is the MD5
  // of our body: the object is ours, commit succeeds.
  Fixture f;
  const std::string body = "segment bytes";
  f.t->then(reply(404));
  f.t->then(network_failure(CURLE_RECV_ERROR));
  f.t->then(s3_error(412, "PreconditionFailed"));
  f.t->then(reply(200, "", {{"etag", quoted(sigv4::md5_hex(as_bytes(body)))}, {"content-length", "13"}}));
  put_bytes(*f.s, "k", body, true);
  EXPECT_EQ(f.t->whats(), (std::vector<std::string>{"HEAD", "PUT", "PUT", "HEAD"}));
}

TEST(S3Client, LostAnswerWithAnotherWritersEtagIsDuplicate) {
  Fixture f;
  f.t->then(reply(404));
  f.t->then(network_failure(CURLE_RECV_ERROR));
  f.t->then(s3_error(412, "PreconditionFailed"));
  f.t->then(reply(200, "", {{"etag", quoted(sigv4::md5_hex(as_bytes("other")))}}));
  EXPECT_THROW_KIND(put_bytes(*f.s, "k", "mine", true), ErrorKind::Duplicate);
  EXPECT_EQ(f.t->seen().size(), 4u);
}

TEST(S3Client, FirstAttempt412IsDuplicateWithoutLookingAtTheEtag) {
  // Only a retried PUT can have lost an answer: a 412 to the first attempt is another writer's object
  // even when its bytes happen to be ours.
  Fixture f;
  f.t->then(reply(404));
  f.t->then(s3_error(412, "PreconditionFailed"));
  f.t->route(reply(200, "", {{"etag", quoted(sigv4::md5_hex(as_bytes("mine")))}}));
  EXPECT_THROW_KIND(put_bytes(*f.s, "k", "mine", true), ErrorKind::Duplicate);
  EXPECT_EQ(f.t->whats(), (std::vector<std::string>{"HEAD", "PUT"}));
}

TEST(S3Client, NotImplemented501FallsBackToConfirmedPutAndIsRemembered) {
  Fixture f;
  const std::string body = "first";
  const std::string etag = quoted(sigv4::md5_hex(as_bytes(body)));
  script_501_fallback(*f.t);
  f.t->then(reply(200, "", {{"etag", etag}}));  // HEAD after the settle time: ours
  put_bytes(*f.s, "k", body, true);
  auto seen = f.t->seen();
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[1].header("if-none-match"), "*");
  EXPECT_FALSE(seen[3].has_header("if-none-match"));
  EXPECT_FALSE(seen[3].expect_continue);

  // The 501 is remembered: the next create-if-absent put sends no condition at all.
  f.t->then(reply(404));
  f.t->then(reply(200));
  f.t->then(reply(200, "", {{"etag", etag}}));
  put_bytes(*f.s, "k2", body, true);
  seen = f.t->seen();
  ASSERT_EQ(seen.size(), 8u);
  EXPECT_EQ(seen[6].method, "PUT");
  EXPECT_FALSE(seen[6].has_header("if-none-match"));
}

// base-push's bundles: the check after the settle time is handed to the caller, who runs it before
// anything names the object; it still refuses another writer's object, and still waits the settle time.
TEST(S3Client, ADeferredConfirmRunsLaterAndStillRefusesAnotherWritersObject) {
  Fixture f;
  const std::string body = "first";
  const std::string etag = quoted(sigv4::md5_hex(as_bytes(body)));
  script_501_fallback(*f.t);
  DeferredConfirms later;
  EXPECT_FALSE(f.s->create_confirmed());  // not known yet: a claim read back after a put still pauses
  const auto before = std::chrono::steady_clock::now();
  PutOptions po{.if_absent = true, .size = body.size(), .confirm_later = &later};
  auto w = f.s->put("k", po);
  w->write(as_bytes(body));
  w->commit();
  EXPECT_EQ(f.t->whats(), (std::vector<std::string>{"HEAD", "PUT", "HEAD", "PUT"}));  // no check yet
  EXPECT_TRUE(f.s->create_confirmed());   // learned: every create-if-absent put is checked after its settle
  f.t->then(reply(200, "", {{"etag", quoted(sigv4::md5_hex(as_bytes("theirs")))}}));
  EXPECT_THROW_KIND(later.run(), ErrorKind::Duplicate);
  EXPECT_GE(std::chrono::steady_clock::now() - before, std::chrono::milliseconds(250));
  EXPECT_EQ(f.t->whats().back(), "HEAD");

  // Ours: run() passes; a second run() has nothing left to check.
  f.t->then(reply(404));
  f.t->then(reply(200));
  auto w2 = f.s->put("k2", po);
  w2->write(as_bytes(body));
  w2->commit();
  f.t->then(reply(200, "", {{"etag", etag}}));
  later.run();
  const std::size_t requests = f.t->seen().size();
  later.run();
  EXPECT_EQ(f.t->seen().size(), requests);
}

TEST(S3Client, A501LearnedByOneStorageIsKnownToEveryStorageOfThatStoreOnly) {
  // Look-ahead threads each open their own repository: the store's 501 is learned once per process.
  const std::string body = "first";
  const std::string etag = quoted(sigv4::md5_hex(as_bytes(body)));
  Fixture one;
  script_501_fallback(*one.t);
  one.t->then(reply(200, "", {{"etag", etag}}));
  put_bytes(*one.s, "k", body, true);

  // Another Storage on the same endpoint and bucket: no probe, and still no overwrite of what exists.
  Fixture two;
  two.t->then(reply(200, "", {{"content-length", "5"}}));  // HEAD: present
  EXPECT_THROW_KIND(put_bytes(*two.s, "k", "other", true), ErrorKind::Duplicate);
  EXPECT_EQ(two.t->whats(), std::vector<std::string>{"HEAD"});
  two.t->then(reply(404));
  two.t->then(reply(200));
  two.t->then(reply(200, "", {{"etag", etag}}));
  put_bytes(*two.s, "k2", body, true);
  auto seen = two.t->seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[2].method, "PUT");
  EXPECT_FALSE(seen[2].has_header("if-none-match"));

  // Another endpoint (or bucket) is probed again.
  for (auto change : {+[](S3Options& o) { o.endpoint = "http://s3.other:9000"; },
                      +[](S3Options& o) { o.bucket = "bkt2"; }}) {
    S3Options o = fake_s3_options();
    change(o);
    Fixture other(o);
    other.t->then(reply(404));
    other.t->then(reply(200));
    put_bytes(*other.s, "k", body, true);
    seen = other.t->seen();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[1].header("if-none-match"), "*");
  }
}

TEST(S3Client, FallbackPutOverwrittenByAnotherWriterIsDuplicate) {
  Fixture f;
  script_501_fallback(*f.t);
  f.t->then(reply(200, "", {{"etag", quoted(sigv4::md5_hex(as_bytes("theirs")))}}));
  try {
    put_bytes(*f.s, "k", "mine", true);
    ADD_FAILURE() << "commit did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Duplicate);
    EXPECT_NE(std::string(e.what()).find("another writer stored this key during the upload"), std::string::npos);
  }
}

TEST(S3Client, PlainPutSendsContentMd5AndNoCondition) {
  Fixture f;
  f.t->then(reply(200));
  put_bytes(*f.s, "k", "abc", false);
  auto seen = f.t->seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].header("content-md5"), sigv4::md5_base64(as_bytes("abc")));
  EXPECT_FALSE(seen[0].has_header("if-none-match"));
}

// --- reads ---------------------------------------------------------------------------------------------

// A ranged GET whose answer arrives in pieces, past what the reader reserves before the first byte
// (1 MiB) and up to the chunk it asked for: every byte in order, in one chunk.
TEST(S3Client, AGetAnswerLargerThanTheFirstReserveArrivesWhole) {
  S3Options o = fake_s3_options();
  o.get_chunk_size = 4 << 20;
  Fixture f(o);
  std::string body(3 * (1 << 20) + 17, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 131 % 251);
  f.t->then([&](const SeenRequest& r, const BodyCallback& on_body) {
    EXPECT_EQ(r.method, "GET");
    HttpResponse a;
    a.status = 206;
    a.headers = {{"content-length", std::to_string(body.size())},
                 {"content-range", "bytes 0-" + std::to_string(body.size() - 1) + "/" + std::to_string(body.size())},
                 {"etag", quoted("e1")}};
    const std::size_t cuts[] = {0, 700 << 10, 1400 << 10, body.size()};
    for (int i = 0; i < 3; ++i) on_body(as_bytes(std::string_view(body).substr(cuts[i], cuts[i + 1] - cuts[i])));
    return a;
  });
  Bytes got = read_all(*f.s, "big");
  EXPECT_EQ(f.t->seen().size(), 1u);
  ASSERT_EQ(got.size(), body.size());
  EXPECT_TRUE(std::equal(got.begin(), got.end(), body.begin(),
                         [](std::uint8_t a, char b) { return a == static_cast<std::uint8_t>(b); }));
}

}  // namespace
}  // namespace pgvault
