// A small HTTP/1.1 server for the canary guest program: one request per
// connection (answers carry "Connection: close"), requests handled one at a
// time, bodies sized by Content-Length (no chunked uploads).
//
// Why not cpp-httplib: Debian ships it only as a shared library (its split
// build), and the canary must link statically to run in a busybox initramfs
// without a dynamic loader. The canary's needs (three routes, small bodies,
// one client at a time) fit in this file.
//
// Thread-safety: Serve runs on one thread; RequestStop may be called from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/files.h"
#include "common/result.h"

namespace kindling::canary {

struct HttpRequest {
  std::string method{};
  std::string target{};                          // "/records", query string included
  std::map<std::string, std::string> headers{};  // names lower-cased
  std::string body{};
};

struct HttpResponse {
  int status = 200;
  std::string body{};
  std::string content_type = "application/json";
};

// Requests larger than this (head plus body) are answered 413.
inline constexpr std::size_t kMaxRequestBytes = 1 << 20;

// Parses a request from the bytes received so far: nullopt while incomplete;
// the error is the answer to send when it cannot be served: 400 malformed,
// 411 Transfer-Encoding instead of Content-Length, 413 over kMaxRequestBytes.
[[nodiscard]] std::expected<std::optional<HttpRequest>, HttpResponse> ParseHttpRequest(
    std::string_view received);

// "HTTP/1.1 <status> <reason>\r\n" with Content-Type, Content-Length and
// Connection: close, then the body.
std::string RenderHttpResponse(const HttpResponse& response);

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Listens on `address` (IPv4 dotted quad) and `port` (0: any free port).
  [[nodiscard]] static Result<HttpServer> Listen(const std::string& address, std::uint16_t port);

  HttpServer(HttpServer&&) noexcept = default;
  HttpServer& operator=(HttpServer&&) noexcept = default;

  std::uint16_t port() const { return port_; }

  // Accepts and answers connections until RequestStop (noticed within
  // ~100 ms). A client that sends nothing for `idle_timeout` is dropped.
  [[nodiscard]] Status Serve(const Handler& handler,
                             std::chrono::milliseconds idle_timeout = std::chrono::seconds(5));
  void RequestStop() { stop_->store(true); }

 private:
  HttpServer(UniqueFd fd, std::uint16_t port)
      : fd_(std::move(fd)), port_(port), stop_(std::make_unique<std::atomic<bool>>(false)) {}
  void HandleConnection(int fd, const Handler& handler, std::chrono::milliseconds idle_timeout);

  UniqueFd fd_;
  std::uint16_t port_;
  std::unique_ptr<std::atomic<bool>> stop_;
};

}  // namespace kindling::canary
