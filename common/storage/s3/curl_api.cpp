#include "common/storage/s3/curl_api.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "common/base/errors.h"

namespace pgvault {
namespace {

constexpr const char* kLibcurl = "libcurl.so.4";

template <typename Fn>
void bind(void* lib, Fn& fn, const char* symbol) {
  void* p = ::dlsym(lib, symbol);
  if (p == nullptr) {
    throw Error(ErrorKind::Config, std::string(kLibcurl) + " has no " + symbol + ": the S3 backend needs libcurl 7.85 or later");
  }
  fn = reinterpret_cast<Fn>(p);
}

CurlApi load() {
  void* lib = ::dlopen(kLibcurl, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    throw Error(ErrorKind::Config, std::string("cannot load ") + kLibcurl + " for the S3 backend (install libcurl4): " +
                                       (why != nullptr ? why : "unknown error"));
  }
  CurlApi api{};
  bind(lib, api.global_init, "curl_global_init");
  bind(lib, api.easy_init, "curl_easy_init");
  bind(lib, api.easy_cleanup, "curl_easy_cleanup");
  bind(lib, api.easy_reset, "curl_easy_reset");
  bind(lib, api.easy_setopt, "curl_easy_setopt");
  bind(lib, api.easy_perform, "curl_easy_perform");
  bind(lib, api.easy_getinfo, "curl_easy_getinfo");
  bind(lib, api.easy_strerror, "curl_easy_strerror");
  bind(lib, api.slist_append, "curl_slist_append");
  bind(lib, api.slist_free_all, "curl_slist_free_all");
  bind(lib, api.getdate, "curl_getdate");
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error(ErrorKind::Internal, "curl_global_init failed");
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const CurlApi& curl_api() {
  static std::once_flag once;
  static CurlApi api;
  std::call_once(once, [] { api = load(); });  // a throw leaves the flag unset: the next call retries
  return api;
}

}  // namespace pgvault
