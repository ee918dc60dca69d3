// Random bytes, master keys, and the key and passphrase files they are read from.
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>

#include "common/base/errors.h"
#include "common/crypto/crypto.h"
#include "common/crypto/openssl_error.h"
#include "common/crypto/wipe.h"

namespace pgvault {

namespace {

bool is_space(std::uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string mode_string(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Reads a small secret file (key or passphrase), refusing group/other access. `label` is "key file" or
// "passphrase file". The caller wipes the returned bytes.
Bytes read_secret_file(const std::string& path, std::string_view label, std::size_t max_size) {
  std::string name = std::string(label) + " " + path;
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw errno_error("open " + name, errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw errno_error("stat " + name, errno);
  if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::Config, name + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    throw Error(ErrorKind::Config, name + " is readable by group or others (mode " +
                                       mode_string(st.st_mode) + "); chmod 600 it");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_size) {
    throw Error(ErrorKind::Config, name + " is too large (" + std::to_string(st.st_size) +
                                       " bytes, at most " + std::to_string(max_size) + " expected)");
  }

  Bytes data(max_size + 1);
  std::size_t len = 0;
  for (;;) {
    if (len == data.size()) break;
    ssize_t n = ::read(fd, data.data() + len, data.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      wipe(data);
      throw errno_error("read " + name, err);
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  if (len > max_size) {  // grew between fstat and read
    wipe(data);
    throw Error(ErrorKind::Config, name + " is too large (at most " + std::to_string(max_size) +
                                       " bytes expected)");
  }
  // Shrink without leaving a copy of the secret behind in a freed buffer.
  Bytes out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(len));
  wipe(data);
  return out;
}

}  // namespace

void random_bytes(std::span<std::uint8_t> out) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    int n = static_cast<int>(std::min<std::size_t>(out.size() - pos, INT_MAX));
    if (RAND_bytes(out.data() + pos, n) != 1) throw_openssl("random_bytes: RAND_bytes failed");
    pos += static_cast<std::size_t>(n);
  }
}

MasterKey::MasterKey(ByteView bytes) {
  if (bytes.size() != bytes_.size()) {
    throw Error(ErrorKind::InvalidInput,
                "a master key must be 32 bytes (got " + std::to_string(bytes.size()) + ")");
  }
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
}

MasterKey::~MasterKey() { wipe(bytes_); }

MasterKey load_key_file(const std::string& path) {
  Bytes data = read_secret_file(path, "key file", 4096);
  WipeOnExit wipe_data(data);
  if (data.size() == 32) return MasterKey(data);

  std::size_t begin = 0;
  std::size_t end = data.size();
  while (begin < end && is_space(data[begin])) ++begin;
  while (end > begin && is_space(data[end - 1])) --end;
  std::string_view text(reinterpret_cast<const char*>(data.data()) + begin, end - begin);

  if (text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) { return hex_digit_value(c) >= 0; })) {
    Bytes key = from_hex(text);
    WipeOnExit wipe_key(key);
    return MasterKey(key);
  }
  try {
    Bytes key = from_base64(text);
    WipeOnExit wipe_key(key);
    if (key.size() == 32) return MasterKey(key);
  } catch (const Error&) {
    // not base64: fall through to the format error
  }
  throw Error(ErrorKind::Config, "key file " + path +
                                     ": expected 32 raw bytes, 64 hex digits or base64 of 32 bytes (got " +
                                     std::to_string(data.size()) + " bytes)");
}

KdfParams new_kdf_params() {
  KdfParams p;
  p.salt.resize(16);
  random_bytes(p.salt);
  return p;
}

std::string load_passphrase_file(const std::string& path) {
  Bytes data = read_secret_file(path, "passphrase file", 64 * 1024);
  WipeOnExit wipe_data(data);
  auto nl = std::find(data.begin(), data.end(), std::uint8_t{'\n'});
  std::size_t len = static_cast<std::size_t>(nl - data.begin());
  if (len > 0 && data[len - 1] == '\r') --len;
  if (len == 0) {
    throw Error(ErrorKind::Config,
                "passphrase file " + path + " is empty (its first line must hold the passphrase)");
  }
  return std::string(reinterpret_cast<const char*>(data.data()), len);
}

}  // namespace pgvault
