// EdgeClient: requests to the edge (edge/edge_proxy.h) as a user's browser
// makes them, for checks that go through it: the Host header names the
// service, the edge picks one of its running instances. No API key is sent.
//
// Errors: only transport failures ("cannot reach the edge at <url> (...)",
// kinds as http::HttpClient's: kTransient for refused connections and
// timeouts); any HTTP status, the edge's own 404/502/503 included, is an
// answer for the caller to judge.
//
// Thread-safe: calls may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::http {
class HttpClient;
}

namespace kindling::client {

struct EdgeClientOptions {
  // scheme://host[:port]; http or https; a trailing '/' is ignored.
  std::string base_url{};  // REQUIRED
  long connect_timeout_ms = 5'000;
  long request_timeout_ms = 10'000;
  std::string user_agent = "kindling-cli";
  // PEM CA certificates to verify an https:// edge with; empty: the system store.
  std::string ca_file{};
};

struct EdgeAnswer {
  long status = 0;
  std::string body{};
};

class EdgeClient {
 public:
  // kInvalidArgument for a base URL that is not http(s)://host...
  [[nodiscard]] static Result<std::unique_ptr<EdgeClient>> Create(EdgeClientOptions options);
  ~EdgeClient();
  EdgeClient(const EdgeClient&) = delete;
  EdgeClient& operator=(const EdgeClient&) = delete;

  const std::string& base_url() const { return base_url_; }

  // GET `path` (starts with '/', already encoded) with "Host: <hostname>".
  // kInvalidArgument for a hostname a header cannot carry.
  [[nodiscard]] Result<EdgeAnswer> Get(std::string_view path, const std::string& hostname);

 private:
  EdgeClient(std::string base_url, EdgeClientOptions options);

  std::string base_url_;
  EdgeClientOptions options_;
  std::unique_ptr<http::HttpClient> http_;
};

}  // namespace kindling::client
