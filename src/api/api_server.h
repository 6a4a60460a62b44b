// ApiServer: the HTTP API (cpp-httplib) over the control layer.
//
// Every route but GET /healthz, GET /readyz and the web dashboard's files
// (GET /, GET /assets/{name}: api/dashboard_routes.cc, no data in them)
// authenticates a Bearer API key (looked up by
// hash; the answer cached for a few seconds, see ApiServerOptions) and
// authorises the caller (platform admin, or owner/admin/member of the
// project's organisation, as in the reference route table). Failures are
// `{"error": "...", "code": "..."}`: 401 unauthorized, 403 forbidden, 404
// not_found (also for projects of organisations the caller is not in, so
// their existence is not revealed), 400 validation_error (malformed JSON,
// unknown fields, wrong field types, bad UUIDs), 413 payload_too_large for
// bodies over max_body_bytes, and the 409 codes of control/volume_service.h
// and control/deployment_service.h. routes() lists every route with its
// access (tests/api/route_access_test.cc holds each to the rules above).
// Requests read through autocommit statements where one snapshot is not
// needed, and every statement is prepared per database connection
// (db/database.h, db/internal.h): the round trips and planning are most of
// an authenticated GET's cost.
// GET /api/operations/{id}/events streams an operation's changes as
// server-sent events; such streams are bounded in number and length and end
// when the server stops (api/event_streams.h).
// Exceptions of httplib and nlohmann-json stop here. Every answer carries
// X-Request-Id; 5xx answers are logged with their cause and answered
// generically, and every request gets an access log line (api_context.h).
//
// GET /metrics needs a platform admin's key unless metrics_public is set
// (for a scraper on a trusted network). A scrape runs a constant number of
// queries whatever the number of volumes; values computed from rows are
// gauges. Its control-plane backup gauges and
// GET /api/platform/health (platform admin) come from the last check the
// scheduling process on the database host stored (control/
// control_plane_health.h), so any API process answers them.
//
// httplib accepts connections, parses requests, routes and answers them;
// a ConnectionLoop (http/connection_loop.h, http/loop_server.h) holds the open
// connections and serves their requests from a few threads, in the order
// they arrive. With tls_cert_file and tls_key_file the API is served over TLS
// (the SSLServer's OpenSSL context; TLS 1.2 at least, the handshake bounded
// by the loop's read timeout); the loop, socket options and backlog below
// are the same for both.
//
// Sockets are TCP_NODELAY: httplib writes headers and body separately, and
// with Nagle's algorithm the body waited for the client's delayed ACK
// (~40 ms per request on a keep-alive connection). The listen backlog is
// raised from httplib's 5, which a burst of new connections overflowed.
//
// GET .../volume and GET /api/servers are answered from a read cache that
// PostgreSQL's change notifications keep current (api/read_cache.h, which
// says what a reader sees when). bench/api_load.sh measures the API under
// load (README, "API performance").
//
// Thread-safety: Start/Stop from one owner thread; requests are served
// concurrently on the connection loop's threads and share only thread-safe
// state.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/event_streams.h"
#include "common/result.h"
#include "crypto/aead.h"
#include "db/database.h"

namespace kindling::api {

struct ApiServerOptions {
  std::string listen_address = "127.0.0.1";
  int port = 0;  // 0 picks a free port; port() reports it after Start()
  bool metrics_public = false;
  // HTTPS: the certificate chain (PEM, the server's certificate first) and
  // its private key (PEM, unencrypted). Both empty: plain HTTP.
  std::string tls_cert_file{};
  std::string tls_key_file{};
  std::size_t max_body_bytes = 1u << 20;
  // Connections are served by a ConnectionLoop (http/connection_loop.h):
  // `serving_threads` threads take requests in the order they arrive (0:
  // one per core); one waiting for PostgreSQL, a slow client or an event
  // stream's pause is replaced meanwhile, up to `max_threads` threads in
  // all. Beyond `max_connections` open at once, new ones are closed at once.
  std::size_t serving_threads = 0;
  std::size_t max_threads = 256;
  std::size_t max_connections = 4096;
  // An idle keep-alive connection is closed after this long, and any
  // connection after this many requests.
  std::chrono::seconds keep_alive_timeout{5};
  std::size_t keep_alive_max_count = 1000;
  // Authenticated API keys are remembered this long (0: every request asks
  // the database), at most `auth_cache_entries` of them (api/auth_cache.h):
  // a key revoked through another API process keeps working here until then
  // (past half of it, the next request of the key looks it up again).
  std::chrono::milliseconds auth_cache_ttl{10'000};
  std::size_t auth_cache_entries = 4096;
  // The auth cache's clock; empty: steady_clock::now (tests inject theirs).
  std::function<std::chrono::steady_clock::time_point()> clock{};
  // GET .../volume and GET /api/servers answered from memory while their
  // rows have not changed (api/read_cache.h), up to this many values each;
  // 0 turns the cache off.
  std::size_t read_cache_entries = 4096;
  // GET /healthz reuses a database ping begun less than this ago
  // (api/health_probe.h); 0: a ping per request.
  std::chrono::milliseconds health_fresh{1000};
  // GET /readyz (and /api/platform/health) reuse the answer of a backup
  // store check begun less than this ago.
  std::chrono::milliseconds store_probe_fresh{30'000};
  // Server-sent event streams (GET /api/operations/{id}/events): how many at
  // once, how often they poll, how long each lasts (api/event_streams.h).
  EventStreamOptions event_streams{};
};

// Who may call a route: kAuthenticated needs a valid API key (401
// without); kPublic answers anyone (GET /healthz, and GET /metrics with
// metrics_public).
enum class RouteAccess : std::uint8_t { kAuthenticated, kPublic };

struct ApiRoute {
  std::string method;   // GET, POST, PUT, DELETE
  std::string pattern;  // httplib's path regex, e.g. /api/projects/([^/]+)
  RouteAccess access = RouteAccess::kAuthenticated;
};

class ApiServer {
 public:
  // REQUIRES: `db` outlives the server.
  ApiServer(db::Database& db, const crypto::Key& master_key, ApiServerOptions options = {});
  ~ApiServer();  // Stop()s
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and starts serving on a background thread. kIo when the address
  // cannot be bound; kInvalidArgument when already started, or when the TLS
  // certificate or key cannot be loaded (only one given, unreadable, not
  // PEM, or not a pair).
  [[nodiscard]] Status Start();
  // Stops accepting, finishes in-flight requests, joins. Idempotent.
  void Stop();
  // The bound port (valid after Start()).
  int port() const;
  // Every route the server answers (api_context.h: ApiContext::Route).
  const std::vector<ApiRoute>& routes() const;
  // Returns once the read cache has counted every change committed before
  // the call (api/read_cache.h, ChangeWatch::Sync); OK at once when the
  // cache is off. For tests that change rows with SQL of their own.
  [[nodiscard]] Status SyncChanges(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kindling::api
