// s3-storage-tool: drives the s3 backend and the SigV4 signer from the integration tests.
//
//   s3-storage-tool sign < requests.jsonl          sign requests (a JSON line in, a JSON line out)
//   s3-storage-tool [--opt FIELD=VALUE]... [--debug] COMMAND ...
//     put KEY FILE [--if-absent] [--size|--size-is N] upload FILE ("-" = stdin) in 1 MiB writes, announcing
//                                                  its size (or N) to the writer
//     put-abandon KEY FILE                         write FILE, then drop the writer without commit
//     get KEY FILE [--offset N] [--length N]       download to FILE ("-" = stdout)
//     head KEY | list PREFIX | rm KEY | rm-many    (rm-many reads keys from stdin, one per line)
//     tail KEY N                                   get_tail: prints the object size, then the last N
//                                                  bytes as hex
// Options come from PGVAULT_S3_<FIELD> environment variables, then --opt (FIELD as in S3Options).
// Exit: 0 ok, 2 not-found, 3 duplicate, 4 auth, 5 transient, 6 config, 1 anything else.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base/errors.h"
#include "common/crypto/crypto.h"
#include "common/storage/s3/s3.h"
#include "common/storage/s3/sigv4.h"

using namespace pgvault;

namespace {

int exit_code(ErrorKind k) {
  switch (k) {
    case ErrorKind::NotFound: return 2;
    case ErrorKind::Duplicate: return 3;
    case ErrorKind::Auth: return 4;
    case ErrorKind::Transient: return 5;
    case ErrorKind::Config: return 6;
    default: return 1;
  }
}

void sign_one(const nlohmann::json& j) {
  sigv4::Request r;
  r.method = j.at("method");
  r.path = j.at("path");
  for (auto& q : j.value("query", nlohmann::json::array())) r.query.emplace_back(q[0], q[1]);
  for (auto& h : j.value("headers", nlohmann::json::array())) r.headers.emplace_back(h[0], h[1]);
  r.payload_hash = j.at("payload_hash");
  sigv4::Credentials c{j.at("access_key"), j.at("secret_key"), j.value("token", "")};
  auto s = sigv4::sign(r, c, j.at("region").get<std::string>(), j.at("service").get<std::string>(),
                       j.at("date").get<std::string>());
  nlohmann::json out = {{"canonical_request", s.canonical_request},
                        {"string_to_sign", s.string_to_sign},
                        {"authorization", s.authorization},
                        {"encoded_path", sigv4::uri_encode(r.path, true)},
                        {"encoded_query", sigv4::canonical_query(r.query)}};
  std::cout << out.dump() << std::endl;
}

// One JSON request per input line, one JSON answer per output line.
int do_sign() {
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    sign_one(nlohmann::json::parse(line));
  }
  return 0;
}

void set_opt(S3Options& o, const std::string& k, const std::string& v) {
  auto u64 = [&] { return static_cast<std::uint64_t>(std::stoull(v)); };
  auto i = [&] { return std::stoi(v); };
  if (k == "bucket") o.bucket = v;
  else if (k == "prefix") o.prefix = v;
  else if (k == "endpoint") o.endpoint = v;
  else if (k == "region") o.region = v;
  else if (k == "uri_style") o.uri_style = v;
  else if (k == "access_key_id") o.access_key_id = v;
  else if (k == "secret_access_key") o.secret_access_key = v;
  else if (k == "session_token") o.session_token = v;
  else if (k == "verify_tls") o.verify_tls = v == "true" || v == "1";
  else if (k == "ca_file") o.ca_file = v;
  else if (k == "multipart_threshold") o.multipart_threshold = u64();
  else if (k == "part_size") o.part_size = u64();
  else if (k == "upload_parallel") o.upload_parallel = i();
  else if (k == "get_chunk_size") o.get_chunk_size = u64();
  else if (k == "spill_dir") o.spill_dir = v;
  else if (k == "capability_file") o.capability_file = v;
  else if (k == "max_retries") o.max_retries = i();
  else if (k == "retry_base_ms") o.retry_base_ms = i();
  else if (k == "retry_max_delay_ms") o.retry_max_delay_ms = i();
  else if (k == "total_timeout_s") o.total_timeout_s = i();
  else if (k == "connect_timeout_s") o.connect_timeout_s = i();
  else if (k == "low_speed_limit") o.low_speed_limit = i();
  else if (k == "low_speed_time_s") o.low_speed_time_s = i();
  else if (k == "request_timeout_s") o.request_timeout_s = i();
  else throw Error(ErrorKind::InvalidInput, "unknown option " + k);
}

const char* kFields[] = {"bucket", "prefix", "endpoint", "region", "uri_style", "access_key_id",
                         "secret_access_key", "session_token", "verify_tls", "ca_file",
                         "multipart_threshold", "part_size", "upload_parallel", "get_chunk_size",
                         "max_retries", "retry_base_ms", "capability_file", "retry_max_delay_ms", "total_timeout_s",
                         "connect_timeout_s", "low_speed_limit", "low_speed_time_s", "request_timeout_s"};

// What the command line says: the options, the flags and the positional arguments (command first).
struct Invocation {
  S3Options o;
  std::map<std::string, std::string> flags;
  std::vector<std::string> pos;
  bool has(const std::string& flag) const { return flags.count(flag) > 0; }
  // The positional arguments after the command must be exactly n.
  void need(std::size_t n) const {
    if (pos.size() != n + 1) throw Error(ErrorKind::InvalidInput, pos[0] + ": wrong number of arguments");
  }
};

Invocation parse(const std::vector<std::string>& args) {
  Invocation inv;
  for (const char* f : kFields) {
    std::string env = "PGVAULT_S3_";
    for (const char* p = f; *p; ++p) env += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
    if (const char* v = std::getenv(env.c_str())) set_opt(inv.o, f, v);
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--opt" && i + 1 < args.size()) {
      auto eq = args[++i].find('=');
      set_opt(inv.o, args[i].substr(0, eq), args[i].substr(eq + 1));
    } else if (a == "--debug") {
      spdlog::set_default_logger(spdlog::stderr_color_mt("s3-storage-tool"));
      spdlog::set_level(spdlog::level::debug);
    } else if (a == "--if-absent" || a == "--size") {
      inv.flags[a] = "1";
    } else if ((a == "--offset" || a == "--length" || a == "--size-is") && i + 1 < args.size()) {
      inv.flags[a] = args[++i];
    } else {
      inv.pos.push_back(a);
    }
  }
  if (inv.pos.empty()) throw Error(ErrorKind::InvalidInput, "no command");
  return inv;
}

int put(Storage& storage, const Invocation& inv) {
  inv.need(2);
  const auto& pos = inv.pos;
  std::FILE* f = pos[2] == "-" ? stdin : std::fopen(pos[2].c_str(), "rb");
  if (f == nullptr) throw errno_error("open " + pos[2], errno);
  PutOptions po;
  po.if_absent = inv.has("--if-absent");
  if (inv.has("--size") && f != stdin) {
    std::fseek(f, 0, SEEK_END);
    po.size = static_cast<std::uint64_t>(std::ftell(f));
    std::fseek(f, 0, SEEK_SET);
  }
  if (inv.has("--size-is")) po.size = std::stoull(inv.flags.at("--size-is"));  // announce a wrong size
  auto w = storage.put(pos[1], po);
  std::vector<std::uint8_t> buf(1 << 20);
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), f)) w->write(ByteView(buf.data(), n));
  if (f != stdin) std::fclose(f);
  if (pos[0] == "put") w->commit();
  return 0;
}

int get(Storage& storage, const Invocation& inv) {
  inv.need(2);
  const auto& pos = inv.pos;
  std::optional<ByteRange> range;
  if (inv.has("--offset") || inv.has("--length")) {
    range = ByteRange{};
    if (inv.has("--offset")) range->offset = std::stoull(inv.flags.at("--offset"));
    if (inv.has("--length")) range->length = std::stoull(inv.flags.at("--length"));
  }
  auto src = storage.get(pos[1], range);
  std::FILE* f = pos[2] == "-" ? stdout : std::fopen(pos[2].c_str(), "wb");
  if (f == nullptr) throw errno_error("open " + pos[2], errno);
  std::vector<std::uint8_t> buf(256 * 1024);
  while (std::size_t n = src->read(buf)) {
    if (std::fwrite(buf.data(), 1, n, f) != n) throw errno_error("write " + pos[2], errno);
  }
  if (f != stdout) std::fclose(f);
  return 0;
}

int head(Storage& storage, const Invocation& inv) {
  inv.need(1);
  auto info = storage.head(inv.pos[1]);
  if (!info) {
    std::cout << "missing\n";
    return 2;
  }
  std::cout << info->size << "\t" << info->mtime << "\n";
  return 0;
}

int rm_many(Storage& storage, const Invocation& inv) {
  inv.need(0);
  std::vector<std::string> keys;
  for (std::string line; std::getline(std::cin, line);) {
    if (!line.empty()) keys.push_back(line);
  }
  storage.remove_many(keys);
  return 0;
}

int run(const std::vector<std::string>& args) {
  Invocation inv = parse(args);
  auto storage = make_s3_storage(inv.o);
  const std::string& cmd = inv.pos[0];
  if (cmd == "put" || cmd == "put-abandon") return put(*storage, inv);
  if (cmd == "get") return get(*storage, inv);
  if (cmd == "head") return head(*storage, inv);
  if (cmd == "rm-many") return rm_many(*storage, inv);
  if (cmd == "tail") {
    inv.need(2);
    auto t = storage->get_tail(inv.pos[1], std::stoul(inv.pos[2]));
    std::cout << t.size << "\t" << to_hex(t.bytes) << "\n";
    return 0;
  }
  if (cmd == "list") {
    inv.need(1);
    for (const auto& i : storage->list(inv.pos[1])) std::cout << i.key << "\t" << i.size << "\t" << i.mtime << "\n";
    return 0;
  }
  if (cmd == "rm") {
    inv.need(1);
    storage->remove(inv.pos[1]);
    return 0;
  }
  throw Error(ErrorKind::InvalidInput, "unknown command " + cmd);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && args[0] == "sign") return do_sign();
    return run(args);
  } catch (const Error& e) {
    std::cerr << "error [" << kind_name(e.kind()) << "]: " << e.what() << "\n";
    return exit_code(e.kind());
  } catch (const std::exception& e) {
    std::cerr << "error [internal]: " << e.what() << "\n";
    return 1;
  }
}
