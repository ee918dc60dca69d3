// The S3 client over a scripted transport (s3_fake_transport.h), no server: retries and their bound,
// the status -> ErrorKind mapping, create-if-absent (If-None-Match, the 501 fallback and its cache, a
// lost answer), and multipart bookkeeping (part numbers and ETags in Complete, Abort on failure and on
// destruction). The same code runs against Swift in tests/integration/test_s3_*.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <regex>
#include <thread>

#include "common/storage/s3/s3.h"
#include "s3_fake_transport.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::FakeTransport;
using testing::network_failure;
using testing::reply;
using testing::s3_error;
using testing::SeenRequest;

S3Options options() {
  S3Options o;
  o.bucket = "bkt";
  o.prefix = "repo";
  o.endpoint = "http://s3.test:9000";
  o.access_key_id = "AK";
  o.secret_access_key = "SK";
  o.capability_file = "none";  // what the store supports is learned in this process only
  o.retry_base_ms = 1;
  o.retry_max_delay_ms = 2;
  return o;
}

struct Fixture {
  std::shared_ptr<FakeTransport> t = std::make_shared<FakeTransport>();
  std::unique_ptr<Storage> s;
  explicit Fixture(const S3Options& o = options()) : s(make_s3_storage(o, t)) {}
};

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

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
  S3Options o = options();
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
  f.t->then(reply(404));                               // HEAD
  f.t->then(s3_error(501, "NotImplemented"));          // conditional PUT refused
  f.t->then(reply(404));                               // HEAD again, right before the upload
  f.t->then(reply(200));                               // unconditional PUT
  f.t->then(reply(200, "", {{"etag", etag}}));         // HEAD after the settle time: ours
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

TEST(S3Client, FallbackPutOverwrittenByAnotherWriterIsDuplicate) {
  Fixture f;
  f.t->then(reply(404));
  f.t->then(s3_error(501, "NotImplemented"));
  f.t->then(reply(404));
  f.t->then(reply(200));
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

// --- multipart -----------------------------------------------------------------------------------------

constexpr std::uint64_t kPart = 5ull << 20;

S3Options multipart_options() {
  S3Options o = options();
  o.multipart_threshold = 64 << 10;
  o.part_size = kPart;
  o.upload_parallel = 2;
  return o;
}

std::string query_value(const std::string& url, const std::string& name) {
  std::smatch m;
  if (std::regex_search(url, m, std::regex("[?&]" + name + "=([^&]*)"))) return m[1];
  return {};
}

// A store for one multipart upload "U1": part N answers ETag "etag-N" (fail_part: 403 instead);
// CompleteMultipartUpload and HEAD are answered by `complete` and `head` (default: success, 418).
void route_multipart(FakeTransport& t, int fail_part = 0, testing::Handler complete = {}, testing::Handler head = {}) {
  if (!complete) complete = reply(200, "<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>");
  if (!head) head = reply(418);
  t.route([=](const SeenRequest& r, const BodyCallback& on_body) {
    const std::string part = query_value(r.url, "partNumber");
    if (r.method == "POST" && r.url.find("?uploads=") != std::string::npos) {
      return reply(200, "<InitiateMultipartUploadResult><UploadId>U1</UploadId></InitiateMultipartUploadResult>")(r, on_body);
    }
    if (r.method == "PUT" && !part.empty()) {
      if (std::stoi(part) == fail_part) return s3_error(403, "AccessDenied")(r, on_body);
      return reply(200, "", {{"etag", quoted("etag-" + part)}})(r, on_body);
    }
    if (r.method == "POST" && !query_value(r.url, "uploadId").empty()) return complete(r, on_body);
    if (r.method == "HEAD") return head(r, on_body);
    if (r.method == "DELETE") return reply(204)(r, on_body);
    return reply(418)(r, on_body);
  });
}

void write_pattern(ObjectWriter& w, std::uint64_t total) {
  Bytes chunk(1 << 20);
  for (std::uint64_t done = 0; done < total;) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), total - done));
    std::fill(chunk.begin(), chunk.end(), static_cast<std::uint8_t>(done >> 20));
    w.write(ByteView(chunk.data(), n));
    done += n;
  }
}

std::vector<SeenRequest> matching(const std::vector<SeenRequest>& all, const std::string& method,
                                  const std::string& in_url) {
  std::vector<SeenRequest> out;
  for (const auto& r : all) {
    if (r.method == method && r.url.find(in_url) != std::string::npos) out.push_back(r);
  }
  return out;
}

TEST(S3Client, MultipartCompleteListsEveryPartNumberWithItsEtag) {
  Fixture f(multipart_options());
  route_multipart(*f.t);
  auto w = f.s->put("big", PutOptions{});
  write_pattern(*w, 2 * kPart + (1 << 20));  // parts of 5, 5 and 1 MiB
  w->commit();
  auto seen = f.t->seen();
  auto parts = matching(seen, "PUT", "partNumber=");
  ASSERT_EQ(parts.size(), 3u);
  std::vector<std::uint64_t> sizes(4);
  for (const auto& p : parts) {
    EXPECT_EQ(query_value(p.url, "uploadId"), "U1");
    sizes[static_cast<std::size_t>(std::stoi(query_value(p.url, "partNumber")))] = p.body_size;
  }
  EXPECT_EQ(sizes, (std::vector<std::uint64_t>{0, kPart, kPart, 1 << 20}));
  auto complete = matching(seen, "POST", "uploadId=U1");
  ASSERT_EQ(complete.size(), 1u);
  EXPECT_EQ(complete[0].body,
            "<CompleteMultipartUpload>"
            "<Part><PartNumber>1</PartNumber><ETag>&quot;etag-1&quot;</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>&quot;etag-2&quot;</ETag></Part>"
            "<Part><PartNumber>3</PartNumber><ETag>&quot;etag-3&quot;</ETag></Part>"
            "</CompleteMultipartUpload>");
  EXPECT_TRUE(matching(seen, "DELETE", "").empty());  // nothing aborted after a complete upload
}

TEST(S3Client, AtMostUploadParallelPartsAreInFlight) {
  Fixture f(multipart_options());  // upload_parallel = 2
  auto in_flight = std::make_shared<std::atomic<int>>(0);
  auto most = std::make_shared<std::atomic<int>>(0);
  auto parts = [in_flight, most](const SeenRequest& r, const BodyCallback& on_body) {
    int now = ++*in_flight;
    for (int seen = most->load(); now > seen && !most->compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    --*in_flight;
    return reply(200, "", {{"etag", quoted("etag-" + query_value(r.url, "partNumber"))}})(r, on_body);
  };
  f.t->route([parts](const SeenRequest& r, const BodyCallback& on_body) {  // parts answered slowly
    if (r.method == "PUT" && !query_value(r.url, "partNumber").empty()) return parts(r, on_body);
    if (r.method == "POST" && r.url.find("?uploads=") != std::string::npos) {
      return reply(200, "<InitiateMultipartUploadResult><UploadId>U1</UploadId></InitiateMultipartUploadResult>")(r, on_body);
    }
    return reply(200, "<CompleteMultipartUploadResult/>")(r, on_body);
  });
  auto w = f.s->put("big", PutOptions{});
  write_pattern(*w, 6 * kPart);
  w->commit();
  EXPECT_EQ(matching(f.t->seen(), "PUT", "partNumber=").size(), 6u);
  EXPECT_EQ(most->load(), 2);
}

TEST(S3Client, FailedPartAbortsTheUploadAndTheFirstErrorWins) {
  Fixture f(multipart_options());
  route_multipart(*f.t, 2);
  auto w = f.s->put("big", PutOptions{});
  try {
    write_pattern(*w, 3 * kPart);
    w->commit();
    ADD_FAILURE() << "the upload did not fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Auth) << e.what();
    EXPECT_NE(std::string(e.what()).find("s3 upload-part s3://bkt/repo/big: HTTP 403"), std::string::npos) << e.what();
  }
  w.reset();
  auto seen = f.t->seen();
  auto aborts = matching(seen, "DELETE", "uploadId=U1");
  EXPECT_EQ(aborts.size(), 1u);
  EXPECT_TRUE(matching(seen, "POST", "uploadId=U1").empty());  // never completed
}

TEST(S3Client, WriterDestroyedBeforeCommitAbortsTheUpload) {
  Fixture f(multipart_options());
  route_multipart(*f.t);
  {
    auto w = f.s->put("big", PutOptions{});
    write_pattern(*w, kPart + 1);
  }
  auto seen = f.t->seen();
  EXPECT_EQ(matching(seen, "DELETE", "uploadId=U1").size(), 1u);
  EXPECT_TRUE(matching(seen, "POST", "uploadId=U1").empty());
}

TEST(S3Client, LostAnswerToCompleteIsAcceptedWhenTheStoredEtagIsOurs) {
  // CompleteMultipartUpload's first answer is lost; the retry finds the upload gone (404 NoSuchUpload).
  // The stored multipart ETag (MD5 of the part MD5s, "-2") is ours: the upload succeeded.
  Fixture f(multipart_options());
  Bytes part1(kPart), part2(1);
  for (std::uint64_t i = 0; i < kPart; ++i) part1[i] = static_cast<std::uint8_t>(i >> 20);
  part2[0] = 5;
  const std::string expected =
      sigv4::md5_hex(as_bytes(sigv4::md5_raw(part1) + sigv4::md5_raw(part2))) + "-2";
  auto completes = std::make_shared<int>(0);
  auto complete = [completes](const SeenRequest& r, const BodyCallback& on_body) {
    if (++*completes == 1) return network_failure(CURLE_RECV_ERROR)(r, on_body);  // the answer is lost
    return s3_error(404, "NoSuchUpload")(r, on_body);                              // the retry: gone
  };
  route_multipart(*f.t, 0, complete, reply(200, "", {{"etag", quoted(expected)}}));
  auto w = f.s->put("big", PutOptions{});
  write_pattern(*w, kPart + 1);
  w->commit();
  auto whats = f.t->whats();
  ASSERT_GE(whats.size(), 3u);
  EXPECT_EQ(whats.back(), "HEAD");
  EXPECT_TRUE(matching(f.t->seen(), "DELETE", "").empty());
}

}  // namespace
}  // namespace pgvault
