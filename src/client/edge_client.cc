#include "client/edge_client.h"

#include <exception>

#include "client/http_text.h"
#include "http/http_client.h"

namespace kindling::client {

EdgeClient::EdgeClient(std::string base_url, EdgeClientOptions options)
    : base_url_(std::move(base_url)),
      options_(std::move(options)),
      http_(std::make_unique<http::HttpClient>(
          http::HttpClientOptions{.max_connections = 2,
                                  .connect_timeout_ms = options_.connect_timeout_ms,
                                  .request_timeout_ms = options_.request_timeout_ms,
                                  .ca_file = options_.ca_file})) {}

EdgeClient::~EdgeClient() = default;

Result<std::unique_ptr<EdgeClient>> EdgeClient::Create(EdgeClientOptions options) {
  KINDLING_ASSIGN_OR_RETURN(std::string url, NormalizeBaseUrl(options.base_url, "edge"));
  try {
    return std::unique_ptr<EdgeClient>(new EdgeClient(std::move(url), std::move(options)));
  } catch (const std::exception& e) {
    return InternalError(std::string("edge client: ") + e.what());
  }
}

Result<EdgeAnswer> EdgeClient::Get(std::string_view path, const std::string& hostname) {
  if (hostname.empty() || !IsHeaderSafe(hostname)) {
    return InvalidArgument("not a hostname to send to the edge: \"" + PrintableExcerpt(hostname) +
                           "\"");
  }
  http::HttpRequest request;
  request.method = "GET";
  request.url = base_url_ + std::string(path);
  request.headers = {"Host: " + hostname, "User-Agent: " + options_.user_agent};
  const std::string what = "GET " + std::string(path) + " (Host: " + hostname + ")";
  auto response = http_->Send(request, what);
  if (!response) {
    return MakeError(response.error().kind(), "cannot reach the edge at " + base_url_ + " (" +
                                                  response.error().message() + ")");
  }
  return EdgeAnswer{.status = response->status, .body = std::move(response->body)};
}

}  // namespace kindling::client
