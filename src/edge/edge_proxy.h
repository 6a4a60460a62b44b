// EdgeProxy: the HTTP reverse proxy (cpp-httplib) in front of the workloads.
//
// Every request is routed by its Host header through the RouteTable and sent
// to the picked backend with its method, raw path and query, body and headers
// (hop-by-hop ones removed; X-Forwarded-For appended to, X-Forwarded-Host and
// X-Forwarded-Proto set; Host kept); the backend's answer is returned as is,
// status, headers (hop-by-hop removed) and body, Range and Content-Encoding
// untouched. Answers of the edge itself:
//   404  no route for the hostname (a small page naming it)
//   503  the route has no healthy backend ("no instance of <hostname> is up")
//   502  the backend failed: refused the connection with no other backend to
//        retry on, broke off, or did not answer within backend_timeout
//   413  request body over max_body_bytes
//   200  GET <health_path> (default /_edge/healthz) on any hostname: the edge's
//        own health, so that path is never proxied
// A failed connect marks the backend unhealthy at once and the request is
// retried once on another healthy backend; a failure after the request was sent
// is retried the same way only for GET and HEAD (others may have had effects).
//
// One access log line per request (spdlog info: method, host, path without the
// query, status, backend, duration); bodies, queries and headers are never
// logged. Counters for MetricsText().
//
// Not supported: protocol upgrades (WebSocket) and streaming; request and
// answer bodies are buffered whole (the request's bounded by max_body_bytes).
//
// Thread-safety: Start/Stop from one owner thread; requests are served
// concurrently on worker_threads threads; MetricsText() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "edge/routes.h"

namespace kindling::edge {

struct EdgeProxyOptions {
  std::string listen_address = "127.0.0.1";
  int port = 0;  // 0 picks a free port; port() reports it after Start()
  std::size_t max_body_bytes = 16u << 20;
  std::chrono::milliseconds connect_timeout{2'000};   // to a backend
  std::chrono::milliseconds backend_timeout{60'000};  // each read/write with a backend
  std::chrono::milliseconds client_timeout{30'000};   // each read/write with a client
  // httplib serves each client connection on one worker thread for as long as
  // it stays open, idle keep-alive time included: worker_threads bounds the
  // connections served at once, keep_alive_timeout how long an idle one holds
  // its thread.
  int worker_threads = 32;
  std::chrono::seconds keep_alive_timeout{5};
  std::string forwarded_proto = "http";  // "https" behind a TLS terminator
  std::string health_path = "/_edge/healthz";
};

// Counters since start. An answer is counted (and logged) right after it was
// sent; connect/backend failures and retries as they happen.
struct EdgeProxyCounters {
  // Answers by status class: [0] = 1xx ... [4] = 5xx.
  std::array<std::uint64_t, 5> responses{};
  std::uint64_t connect_failures = 0;  // backend refused or did not accept in time
  std::uint64_t backend_failures = 0;  // backend broke off or timed out after the send
  std::uint64_t retries = 0;           // requests sent to a second backend
};

class EdgeProxy {
 public:
  // REQUIRES: `table` outlives the proxy.
  EdgeProxy(RouteTable& table, EdgeProxyOptions options = {});
  ~EdgeProxy();  // Stop()s
  EdgeProxy(const EdgeProxy&) = delete;
  EdgeProxy& operator=(const EdgeProxy&) = delete;

  // Binds and starts serving on a background thread. kIo when the address
  // cannot be bound; kInvalidArgument when already started.
  [[nodiscard]] Status Start();
  // Stops accepting, finishes in-flight requests, joins. Idempotent.
  void Stop();
  // The bound port (valid after Start()).
  int port() const;

  EdgeProxyCounters counters() const;

  // Prometheus text exposition of the counters and of each route's backends
  // (healthy/unhealthy), for the host process to append to its /metrics.
  std::string MetricsText() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kindling::edge
