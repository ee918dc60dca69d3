// Shared TLS trust for S3 connections (tls_trust.h).
#include "common/storage/s3/tls_trust.h"

#include <dirent.h>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <cctype>
#include <map>
#include <mutex>

#include <spdlog/spdlog.h>

#include "common/base/errors.h"
#include "common/base/fs.h"

namespace pgvault {
namespace {

// SSL_CTX_set1_cert_store lives in libssl, which only libcurl (loaded with dlopen) brings in.
using SetCertStore = void (*)(void* ssl_ctx, X509_STORE* store);

SetCertStore set_cert_store() {
  static const SetCertStore fn = []() -> SetCertStore {
    void* ssl = ::dlopen("libssl.so.3", RTLD_NOW | RTLD_NOLOAD);
    return ssl == nullptr ? nullptr : reinterpret_cast<SetCertStore>(::dlsym(ssl, "SSL_CTX_set1_cert_store"));
  }();
  return fn;
}

CURLcode install_store(CURL*, void* ssl_ctx, void* store) {
  set_cert_store()(ssl_ctx, static_cast<X509_STORE*>(store));
  return CURLE_OK;
}

// libcurl's built-in CA directory or bundle (CURLINFO_CAPATH / CURLINFO_CAINFO, libcurl 7.84+).
std::string curl_default(const CurlApi& api, CURLINFO what) {
  CURL* c = api.easy_init();
  if (c == nullptr) return {};
  char* value = nullptr;
  std::string out;
  if (api.easy_getinfo(c, what, &value) == CURLE_OK && value != nullptr) out = value;
  api.easy_cleanup(c);
  return out;
}

std::string openssl_reason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no certificate found";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

X509_STORE* load_store(const TrustSource& src, const std::string& ca_file) {
  const std::string what = ca_file.empty() ? "the system's CA certificates (" + src.path + ")" : "ca_file " + ca_file;
  if (src.directory && !src.path.empty() && !has_hashed_certificates(src.path)) {
    throw Error(ErrorKind::Config, what + ": a directory without hashed certificates (make them with `openssl rehash`)");
  }
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr) throw Error(ErrorKind::Internal, "X509_STORE_new failed");
  ERR_clear_error();
  const int ok = src.path.empty() ? X509_STORE_set_default_paths(store)
                 : src.directory  ? X509_STORE_load_path(store, src.path.c_str())
                                  : X509_STORE_load_file(store, src.path.c_str());
  if (ok != 1) {
    X509_STORE_free(store);
    throw Error(ErrorKind::Config, what + ": cannot load trusted certificates: " + openssl_reason() +
                                       (ca_file.empty() ? " (install ca-certificates, or set ca_file)" : ""));
  }
  return store;
}

// The store for ca_file, built once. Stores live as long as the process: threads that outlive main's
// return may still be connecting.
X509_STORE* shared_store(const CurlApi& api, const std::string& ca_file) {
  static std::mutex mu;
  static auto* stores = new std::map<std::string, X509_STORE*>;
  std::lock_guard lock(mu);
  auto it = stores->find(ca_file);
  if (it != stores->end()) return it->second;
  const TrustSource src = trust_source(ca_file, curl_default(api, CURLINFO_CAPATH), curl_default(api, CURLINFO_CAINFO));
  X509_STORE* store = load_store(src, ca_file);
  spdlog::debug("tls: trusted certificates from {} {} (once per process)", src.directory ? "directory" : "file",
                src.path.empty() ? "(OpenSSL's defaults)" : src.path);
  return stores->emplace(ca_file, store).first->second;
}

}  // namespace

bool has_hashed_certificates(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 10 || name[8] != '.') continue;
    bool hex = true;
    for (int i = 0; i < 8; ++i) hex = hex && std::isxdigit(static_cast<unsigned char>(name[i])) != 0;
    bool digits = true;
    for (std::size_t i = 9; i < name.size(); ++i) digits = digits && std::isdigit(static_cast<unsigned char>(name[i])) != 0;
    if (hex && digits) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

TrustSource trust_source(const std::string& ca_file, const std::string& default_dir, const std::string& default_file) {
  if (!ca_file.empty()) return {is_dir(ca_file), ca_file};
  if (!default_dir.empty() && has_hashed_certificates(default_dir)) return {true, default_dir};
  if (!default_file.empty()) return {false, default_file};
  return {};
}

void use_shared_trust(const CurlApi& api, CURL* c, const std::string& ca_file) {
  if (set_cert_store() != nullptr && api.easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, install_store) == CURLE_OK) {
    api.easy_setopt(c, CURLOPT_SSL_CTX_DATA, shared_store(api, ca_file));
    api.easy_setopt(c, CURLOPT_CAINFO, nullptr);  // libcurl loads nothing itself
    api.easy_setopt(c, CURLOPT_CAPATH, nullptr);
    return;
  }
  if (!ca_file.empty()) api.easy_setopt(c, is_dir(ca_file) ? CURLOPT_CAPATH : CURLOPT_CAINFO, ca_file.c_str());
}

}  // namespace pgvault
