// Multipart uploads of the S3 client over a scripted transport (s3_fake_transport.h): part numbers and
// ETags in CompleteMultipartUpload, at most upload_parallel parts in flight, Abort on a failed part and on
// destruction, and a lost answer to Complete recognised by the multipart ETag.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "common/storage/s3/s3.h"
#include "s3_fake_transport.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

using testing::FakeTransport;
using testing::Fixture;
using testing::fake_s3_options;
using testing::network_failure;
using testing::quoted;
using testing::reply;
using testing::s3_error;
using testing::SeenRequest;

constexpr std::uint64_t kPart = 5ull << 20;

S3Options multipart_options() {
  S3Options o = fake_s3_options();
  o.multipart_threshold = 64 << 10;
  o.part_size = kPart;
  o.upload_parallel = 2;
  return o;
}

// The value of query parameter `name` ("" when absent). Plain string search: the handlers run on the
// upload's worker threads, and std::regex's construction races on a libstdc++ global under TSan.
std::string query_value(const std::string& url, const std::string& name) {
  for (std::size_t q = url.find('?'); q != std::string::npos; q = url.find('&', q + 1)) {
    if (url.compare(q + 1, name.size() + 1, name + "=") == 0) {
      const std::size_t start = q + name.size() + 2;
      const std::size_t end = url.find('&', start);
      return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
    }
  }
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
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // long enough for the producer to fill both slots
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
  // At most upload_parallel parts at once (a worker too many shows 3). Not "exactly 2": under the
  // sanitizers the producer may not have the next 5 MiB part ready while one is in flight.
  EXPECT_LE(most->load(), 2);
  EXPECT_GE(most->load(), 1);
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

// base-push's large bundles: the check that the completed upload is ours (a store not known to honour
// If-None-Match) is handed to the caller and runs there, after the settle time, against the multipart ETag.
TEST(S3Client, ADeferredMultipartCheckRunsLaterAgainstTheMultipartEtag) {
  Fixture f(multipart_options());
  Bytes part1(kPart), part2(1);
  for (std::uint64_t i = 0; i < kPart; ++i) part1[i] = static_cast<std::uint8_t>(i >> 20);
  part2[0] = 5;
  const std::string expected = sigv4::md5_hex(as_bytes(sigv4::md5_raw(part1) + sigv4::md5_raw(part2))) + "-2";
  auto heads = std::make_shared<std::atomic<int>>(0);
  auto head = [heads, expected](const SeenRequest& r, const BodyCallback& on_body) {
    if (++*heads <= 2) return reply(404)(r, on_body);  // absent: before the upload and before Complete
    return reply(200, "", {{"etag", quoted(expected)}})(r, on_body);
  };
  route_multipart(*f.t, 0, {}, head);
  DeferredConfirms later;
  const auto before = std::chrono::steady_clock::now();
  auto w = f.s->put("big", PutOptions{.if_absent = true, .size = {}, .confirm_later = &later});
  write_pattern(*w, kPart + 1);
  w->commit();
  EXPECT_EQ(heads->load(), 2);  // completed, not checked yet
  later.run();
  EXPECT_EQ(heads->load(), 3);
  EXPECT_GE(std::chrono::steady_clock::now() - before, std::chrono::milliseconds(250));
  EXPECT_EQ(f.t->whats().back(), "HEAD");
}

}  // namespace
}  // namespace pgvault
