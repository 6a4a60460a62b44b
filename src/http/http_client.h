// HttpClient: blocking HTTP/1.1 exchanges over libcurl easy handles kept in a
// bounded pool, so that a connection (and its TLS session) is reused by the next
// request and up to `max_connections` callers transfer in parallel. Shared by
// the S3 store and the API client (client/); knows nothing about either.
//
// https:// servers are verified (certificate chain and host name) against the
// system CA store, or only against `ca_file` when one is given.
//
// Thread-safe. A caller that finds every handle busy waits for one.
// Errors: only transport failures are errors (kTransient for timeouts, resets,
// refused connections, truncated bodies; kPermissionDenied when the server's
// TLS certificate is not trusted, "TLS certificate verification failed: ...";
// kInternal for the rest). Any HTTP status, 5xx included, is a successful
// exchange for the caller to interpret.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kindling::http {

struct HttpRequest {
  std::string method;                // GET, HEAD, PUT, POST, DELETE
  std::string url;                   // already encoded
  std::vector<std::string> headers;  // "Name: value"
  // Sent as the body of PUT and POST (an empty body is sent as Content-Length: 0).
  // REQUIRES: outlives the Send call.
  std::string_view body;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, trimmed values
  std::string body;

  // The Content-Length header, when present and a number.
  std::optional<std::uint64_t> ContentLength() const;
  const std::string* Header(const std::string& lower_name) const;
};

struct HttpClientOptions {
  std::size_t max_connections = 16;
  long connect_timeout_ms = 10'000;
  long request_timeout_ms = 300'000;
  // PEM file of the CA certificates that https:// servers are verified with;
  // empty: the system store.
  std::string ca_file{};
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs one exchange. `what` names it in error messages ("S3 GET b/k").
  [[nodiscard]] Result<HttpResponse> Send(const HttpRequest& request, std::string_view what);

 private:
  void* Acquire();
  void Release(void* handle);

  HttpClientOptions options_;
  std::mutex mu_;
  std::condition_variable available_;
  std::vector<void*> idle_;  // guarded by mu_
  std::size_t created_ = 0;  // guarded by mu_
};

}  // namespace kindling::http
