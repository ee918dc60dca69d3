// The libcurl transport against a real socket: a tiny in-process HTTP/1.1 server that keeps
// connections alive, or after every N answers takes the next request and closes the connection without
// answering it (no "Connection: close": what an idle timeout racing the client's next request looks
// like). Connections are reused across requests and across
// the s3 Storages of one process (s3_shared.h), and a connection the server closed is replaced: every
// request succeeds, every object is stored exactly once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/base/text.h"
#include "common/storage/s3/s3.h"
#include "support/test_support.h"

namespace pgvault {
namespace {

// Answers PUT (stores the body), HEAD and GET of a stored key (404 otherwise) on 127.0.0.1.
class KeepAliveServer {
 public:
  // close_after: answers per connection before the server drops one request and the connection; 0 = never.
  explicit KeepAliveServer(int close_after) : close_after_(close_after) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~KeepAliveServer() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  // PUT requests the server received for a key (any path ending in it), and what it stored.
  int puts_of(const std::string& key) {
    std::lock_guard lock(mu_);
    return puts_[key];
  }
  std::string stored(const std::string& key) {
    std::lock_guard lock(mu_);
    return objects_[key];
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      int c = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++connections_;
      serve(c);  // one connection at a time: the client under test sends one request at a time
      ::close(c);
    }
  }

  // Reads until `buf` holds at least `n` bytes; false when the peer closed first.
  static bool fill(int c, std::string& buf, std::size_t n) {
    char chunk[65536];
    while (buf.size() < n) {
      ssize_t r = ::recv(c, chunk, sizeof(chunk), 0);
      if (r <= 0) return false;
      buf.append(chunk, static_cast<std::size_t>(r));
    }
    return true;
  }

  void serve(int c) {
    std::string buf;
    for (int answered = 0;; ++answered) {
      std::size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!fill(c, buf, buf.size() + 1)) return;
      }
      if (close_after_ > 0 && answered == close_after_) return;  // the request is read, never answered
      const std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      std::size_t length = 0;
      const std::string lower = ascii_lower(head);
      const auto cl = lower.find("content-length: ");
      if (cl != std::string::npos) length = std::stoul(lower.substr(cl + 16));
      if (!fill(c, buf, length)) return;
      const std::string body = buf.substr(0, length);
      buf.erase(0, length);
      ++requests_;
      const std::string answer = handle(head.substr(0, head.find(' ')), head.substr(head.find(' ') + 1), body);
      if (::send(c, answer.data(), answer.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(answer.size())) return;
    }
  }

  std::string handle(const std::string& method, const std::string& rest, const std::string& body) {
    std::string key = rest.substr(0, rest.find(' '));
    key = key.substr(key.rfind('/') + 1);
    std::lock_guard lock(mu_);
    if (method == "PUT") {
      ++puts_[key];
      objects_[key] = body;
      return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    }
    auto it = objects_.find(key);
    if (it == objects_.end()) return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    const std::string length = "Content-Length: " + std::to_string(it->second.size()) + "\r\n";
    if (method == "HEAD") return "HTTP/1.1 200 OK\r\n" + length + "\r\n";
    return "HTTP/1.1 200 OK\r\n" + length + "\r\n" + it->second;
  }

  int close_after_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::map<std::string, int> puts_;
  std::map<std::string, std::string> objects_;
  std::thread thread_;
};

S3Options options_for(const KeepAliveServer& server) {
  S3Options o;
  o.bucket = "bkt";
  o.endpoint = server.endpoint();
  o.access_key_id = "AK";
  o.secret_access_key = "SK";
  o.capability_file = "none";
  o.retry_base_ms = 1;
  o.retry_max_delay_ms = 2;
  o.max_retries = 0;  // a dead connection must be replaced by the transport itself, not by a retry
  return o;
}

void put_text(Storage& s, const std::string& key, const std::string& text) {
  auto w = s.put(key, PutOptions{.if_absent = false, .size = text.size()});
  w->write(as_bytes(text));
  w->commit();
}

// `rounds` PUT + HEAD pairs over `s`; every object stored once, with its own bytes.
void put_and_head(KeepAliveServer& server, Storage& s, int rounds, const std::string& prefix = "k") {
  for (int i = 0; i < rounds; ++i) {
    const std::string key = prefix + std::to_string(i), text = "object " + std::to_string(i) + std::string(5000, 'x');
    put_text(s, key, text);
    auto info = s.head(key);
    ASSERT_TRUE(info) << key;
    EXPECT_EQ(info->size, text.size());
    EXPECT_EQ(server.puts_of(key), 1) << key;
    EXPECT_EQ(server.stored(key), text) << key;
  }
}

TEST(S3Connection, OneConnectionServesEveryRequestAndEveryStorageOfTheProcess) {
  KeepAliveServer server(0);
  auto first = make_s3_storage(options_for(server));
  auto second = make_s3_storage(options_for(server));  // as a look-ahead thread opens its own repository
  put_and_head(server, *first, 5, "a");
  put_and_head(server, *second, 5, "b");
  EXPECT_EQ(server.requests(), 20);
  EXPECT_EQ(server.connections(), 1);
}

TEST(S3Connection, AConnectionTheServerClosesIsReplaced) {
  for (int close_after : {1, 3}) {
    SCOPED_TRACE("server closes after " + std::to_string(close_after) + " answers");
    KeepAliveServer server(close_after);
    auto s = make_s3_storage(options_for(server));
    put_and_head(server, *s, 10);
    EXPECT_EQ(server.requests(), 20);
    EXPECT_EQ(server.connections(), (20 + close_after - 1) / close_after);
  }
}

}  // namespace
}  // namespace pgvault
