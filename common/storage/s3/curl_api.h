// libcurl, loaded when the first S3 request is made rather than when a tool starts.
//
// libcurl and the ~30 libraries it depends on cost about 4 ms of dynamic loading in every process,
// which is most of what wal-fetch spends when it hands over a prefetched segment and a noticeable part
// of a wal-push to a local repository. Only the S3 backend needs it, so the tools do not link it:
// curl_api() dlopen()s libcurl.so.4 (the ABI of every libcurl 7.x/8.x) the first time it is called.
// The headers (types, option numbers) still come from libcurl's development package at build time.
#pragma once

#include <curl/curl.h>

#include <ctime>

namespace pgvault {

struct CurlApi {
  CURLcode (*global_init)(long flags);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL* handle);
  void (*easy_reset)(CURL* handle);
  CURLcode (*easy_setopt)(CURL* handle, CURLoption option, ...);
  CURLcode (*easy_perform)(CURL* handle);
  CURLcode (*easy_getinfo)(CURL* handle, CURLINFO info, ...);
  const char* (*easy_strerror)(CURLcode code);
  curl_slist* (*slist_append)(curl_slist* list, const char* text);
  void (*slist_free_all)(curl_slist* list);
  std::time_t (*getdate)(const char* text, const std::time_t* unused);
};

// The loaded library (and curl_global_init done), loaded once per process. Throws Error(Config) naming
// the library when it cannot be loaded or lacks a function.
const CurlApi& curl_api();

}  // namespace pgvault
