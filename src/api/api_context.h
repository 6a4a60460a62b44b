// Plumbing shared by the API's route files: the parsed request body (Body),
// one authenticated request (Call), the reply (Reply) and ApiContext, which
// holds what every route needs (database, master key, control services, the
// httplib server) and wraps handlers with authentication, error encoding and
// exception containment.
//
// Secrets in requests: once a wrapped handler returns, the request's body
// and its Authorization header (the API key) are wiped; a route reads a
// secret field with Body::TakeSecret, which leaves no copy in the parsed body.
//
// A route returns ControlResult<Reply>: an error becomes
// `{"error": "...", "code": "..."}` with its HTTP status; exceptions of
// httplib and nlohmann-json stop in Wrap (500, never echoing the request).
//
// Diagnosis: every answer carries X-Request-Id (the client's when sane, else
// a fresh random one). A 5xx is logged at error level with the request id,
// method, path (never the query string, headers or body) and its internal
// cause, scrubbed of DSN passwords and the caller's API key; a 500's answer
// only says "internal error (request id X)". Every request gets one access
// log line at info level. Both use key=value fields (common/log_fields.h):
//   request failed request_id=ID method=GET path=/p status=500
//       code=internal_error error="..."
//   request request_id=ID method=GET path=/p status=200 duration_ms=3
//       queued_ms=0 remote_addr=127.0.0.1
// duration_ms runs from the connection loop's first read of the request to
// the end of the answer; queued_ms is the part of it before routing began:
// the rest of a request sent in pieces (http/connection_loop.h).
//
// Thread-safety: ApiContext is shared by the threads serving requests; its
// members are thread-safe.
#pragma once

#include <httplib.h>

#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_server.h"
#include "api/auth_cache.h"
#include "api/event_streams.h"
#include "api/health_probe.h"
#include "api/read_cache.h"
#include "common/ids.h"
#include "common/secret.h"
#include "control/control_error.h"
#include "control/deployment_service.h"
#include "control/volume_service.h"
#include "crypto/aead.h"
#include "db/auth.h"
#include "db/database.h"
#include "db/projects.h"
#include "http/connection_loop.h"

namespace kindling::api {

using control::ControlError;
using control::ControlResult;
using control::Refuse;
using nlohmann::json;

inline constexpr char kRequestIdHeader[] = "X-Request-Id";

// True for an id a client may choose: 1-64 characters of [A-Za-z0-9_-].
bool IsSaneRequestId(std::string_view id);
// A fresh request id: 128 bits of OpenSSL's CSPRNG, hex.
std::string NewRequestId();
// `text` fit for a log line: DSN passwords masked (db::RedactDsn), every
// occurrence of `secret` (the caller's API key) replaced by "[api key]"
// (common/scrub.h: ignored when shorter than kMinScrubbedSecretSize), cut at
// 2000 characters. Quoting is LogField's.
std::string ScrubForLog(std::string_view text, std::string_view secret);
// The cause of an exception, for the log: what() for most, only the id of
// nlohmann-json's (they may quote the request body).
std::string ExceptionCause(std::exception_ptr error);

struct Reply {
  int status = 200;
  json body = json::object();
  // A streamed answer instead of `body`: server-sent events
  // (text/event-stream, chunked), `stream` called until it calls
  // sink.done() or returns false (the client went away); `stream_closed`
  // once the answer is over, however it ended (api/event_streams.h).
  httplib::ContentProviderWithoutLength stream{};
  httplib::ContentProviderResourceReleaser stream_closed{};
};

inline std::unexpected<ControlError> Invalid(std::string message) {
  return Refuse(400, control::kCodeValidation, std::move(message));
}

// A request body: a JSON object with known fields of the right types.
class Body {
 public:
  // An empty body counts as {}.
  static ControlResult<Body> Parse(const httplib::Request& req,
                                   const std::vector<std::string_view>& allowed) {
    Body body;
    if (req.body.empty()) return body;
    body.json_ = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.json_.is_discarded()) return Invalid("request body is not valid JSON");
    if (!body.json_.is_object()) return Invalid("request body must be a JSON object");
    for (const auto& [key, value] : body.json_.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return Invalid("unknown field \"" + key + "\"");
      }
    }
    return body;
  }

  bool Has(const std::string& name) const { return json_.contains(name); }
  bool IsNull(const std::string& name) const { return Has(name) && json_[name].is_null(); }

  // Absent and null are both "not given".
  ControlResult<std::optional<std::string>> String(const std::string& name) const {
    if (!Has(name) || json_[name].is_null()) return std::nullopt;
    if (!json_[name].is_string()) return Invalid("field \"" + name + "\" must be a string");
    return json_[name].get<std::string>();
  }
  // The same, moved out of the parsed body into a Secret, so that no copy of
  // it stays behind (the raw body is wiped by Wrap once handled).
  ControlResult<std::optional<Secret>> TakeSecret(const std::string& name) {
    if (!Has(name) || json_[name].is_null()) return std::nullopt;
    if (!json_[name].is_string()) return Invalid("field \"" + name + "\" must be a string");
    return Secret(std::move(json_[name].get_ref<std::string&>()));
  }
  // A name people read (a project's, an API key's): 1 to kMaxNameBytes
  // bytes without control characters (NUL, newlines, ESC, C1), so that it
  // prints as it is; nullopt when absent or null.
  static constexpr std::size_t kMaxNameBytes = 200;
  ControlResult<std::optional<std::string>> Name(const std::string& name) const {
    auto value = String(name);
    if (!value || !*value) return value;
    const std::string& text = **value;
    if (text.empty()) return Invalid("field \"" + name + "\" must not be empty");
    if (text.size() > kMaxNameBytes) {
      return Invalid("field \"" + name + "\" is longer than " + std::to_string(kMaxNameBytes) +
                     " bytes");
    }
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      const bool c1 = c == 0xC2 && i + 1 < text.size() &&
                      static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                      static_cast<unsigned char>(text[i + 1]) <= 0x9F;
      if (c < 0x20 || c == 0x7F || c1)
        return Invalid("field \"" + name + "\" must not hold control characters");
    }
    return value;
  }
  // An absolute, normalised path inside the guest: "/" then names separated
  // by single "/", none "." or "..", no trailing "/", no control
  // characters, at most 1024 bytes; nullopt when absent or null.
  ControlResult<std::optional<std::string>> GuestPath(const std::string& name) const {
    auto value = String(name);
    if (!value || !*value) return value;
    const std::string& path = **value;
    const auto bad = [&](const std::string& why) {
      return Invalid("field \"" + name + "\" must be an absolute, normalised path: " + why);
    };
    if (path.empty() || path.front() != '/') return bad("it must start with /");
    if (path.size() == 1) return bad("/ itself cannot be a mount point");
    if (path.size() > 1024) return bad("it is longer than 1024 bytes");
    if (path.back() == '/') return bad("no trailing /");
    std::size_t start = 1;
    while (start <= path.size()) {
      std::size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      const std::string_view part(path.data() + start, end - start);
      if (part.empty()) return bad("no empty component (//)");
      if (part == "." || part == "..") return bad("no . or .. component");
      start = end + 1;
    }
    for (const char ch : path) {
      const auto c = static_cast<unsigned char>(ch);
      if (c < 0x20 || c == 0x7F) return bad("no control characters");
    }
    return value;
  }
  ControlResult<std::optional<int>> Int(const std::string& name) const {
    if (!Has(name) || json_[name].is_null()) return std::nullopt;
    const json& v = json_[name];
    if (!v.is_number_integer()) return Invalid("field \"" + name + "\" must be an integer");
    const auto value = v.get<long long>();
    if (value < 0 || value > 1'000'000) return Invalid("field \"" + name + "\" is out of range");
    return static_cast<int>(value);
  }
  ControlResult<std::optional<bool>> Bool(const std::string& name) const {
    if (!Has(name) || json_[name].is_null()) return std::nullopt;
    if (!json_[name].is_boolean()) return Invalid("field \"" + name + "\" must be a boolean");
    return json_[name].get<bool>();
  }
  ControlResult<std::optional<std::string>> Uuid(const std::string& name) const {
    auto value = String(name);
    if (!value) return value;
    if (*value && !IsUuid(**value)) return Invalid("field \"" + name + "\" must be a UUID");
    return value;
  }

 private:
  json json_ = json::object();
};

#define API_RETURN_IF_ERROR(expr)                                  \
  do {                                                             \
    auto&& api_status_ = (expr);                                   \
    if (!api_status_) return std::unexpected(api_status_.error()); \
  } while (0)
#define API_ASSIGN_OR_RETURN(lhs, expr) \
  API_ASSIGN_OR_RETURN_IMPL(KINDLING_CONCAT(api_result_, __LINE__), lhs, expr)
#define API_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)           \
  auto tmp = (expr);                                        \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  lhs = std::move(*tmp)

// One authenticated request.
struct Call {
  const httplib::Request& req;
  db::Principal principal;
  control::Actor actor;

  bool IsAdmin() const { return principal.user.is_platform_admin; }
  ControlResult<std::string> PathId(std::size_t index, std::string_view what) const {
    std::string id = req.matches[index];
    if (!IsUuid(id)) return Invalid(std::string(what) + " id is not a UUID: " + id);
    return id;
  }
};

inline ControlResult<void> RequireAdmin(const Call& call) {
  if (!call.IsAdmin()) {
    return Refuse(403, control::kCodeForbidden, "this route needs a platform admin");
  }
  return {};
}

class ApiContext {
 public:
  using Handler = std::function<ControlResult<Reply>(Call&)>;

  // REQUIRES: `db` and `http_server` (an httplib::Server, or an SSLServer
  // for TLS) outlive the context.
  ApiContext(db::Database& database, const crypto::Key& key, ApiServerOptions opts,
             httplib::Server& http_server);

  static void WriteError(httplib::Response& res, int status, std::string_view code,
                         std::string_view message);
  // Answers `error`. A 5xx is logged first (see the file comment), its
  // cause being error.internal, else error.message; a 500 is answered
  // "internal error (request id X)", its code kept.
  static void Fail(const httplib::Request& req, httplib::Response& res, const ControlError& error);
  // On `server`: request ids on every answer, the access log, and an error
  // line for a 5xx that Fail did not log (httplib's own, say); a request
  // without Content-Length or Transfer-Encoding is given an empty
  // body (RFC 9110) instead of httplib's 400 after its read timeout.
  static void InstallRequestLog(httplib::Server& server);

  // The caller of a request with `Authorization: Bearer <api key>`; 401
  // otherwise. Answered from auth_cache when the key was looked up recently.
  ControlResult<db::Principal> Authenticate(const httplib::Request& req);

  // Wraps a route: authentication (unless `authenticate` is false),
  // exceptions, error and reply encoding; wipes the request's body and API
  // key once the handler returned.
  httplib::Server::Handler Wrap(Handler handler, bool authenticate = true);

  using Access = RouteAccess;
  // Adds a route: `method` ("GET", "POST", "PUT" or "DELETE") on the path
  // regex `pattern`, `handler` wrapped as by Wrap (authenticated unless
  // kPublic), and records it in routes(), the list the tests hold every
  // route to (401 without a key, 404 across organisations).
  void Route(std::string_view method, const std::string& pattern, Handler handler,
             Access access = Access::kAuthenticated);
  // The same for a handler that answers on its own (GET /metrics), with the
  // access it enforces.
  void RawRoute(std::string_view method, const std::string& pattern,
                httplib::Server::Handler handler, Access access);
  // Every route added, in order. Complete once the server is constructed.
  const std::vector<ApiRoute>& routes() const { return routes_; }
  // The methods of the routes whose pattern matches `path` ("GET, PUT"),
  // empty when none: a 404 of the HTTP library for such a path is a 405.
  std::string MethodsOf(const std::string& path) const;

  // The project in path match `index`, if the caller may see it (404
  // otherwise, so its existence is not revealed); 403 when they may see but
  // not change it and `need_admin`.
  ControlResult<db::Project> AccessProject(const Call& call, std::size_t index, bool need_admin);
  // The same decision for a project the route has read itself.
  static ControlResult<void> CheckProjectAccess(const Call& call, const db::Project& project,
                                                bool need_admin);

  db::Database& db;
  const crypto::Key master_key;
  const ApiServerOptions options;
  control::VolumeService volumes;
  control::DeploymentService deployments;
  AuthCache auth_cache;  // Forget() a key revoked through this process
  httplib::Server& server;
  // Started and stopped with the server; the caches below read through it.
  ChangeWatch change_watch;
  // GET /api/projects/{id}/volume by project id.
  ReadCache<control::ProjectVolumeView> volume_views;
  // GET /api/servers: an organisation's servers by its id, and when they
  // were read (heartbeat ages are as of then).
  struct ServersRead {
    std::vector<db::Server> servers;
    std::chrono::steady_clock::time_point read_at;
  };
  ReadCache<ServersRead> org_servers;
  // Open server-sent event streams: their bound, and Stop() for them all.
  EventStreams event_streams;
  // The server's connection loop while it is started (null before).
  const http::ConnectionLoop* connections = nullptr;
  HealthProbe health;  // GET /healthz
  // Whether the volume backup store opens (GET /readyz, GET
  // /api/platform/health): its answer reused for options.store_probe_fresh.
  HealthProbe store_probe;
  // The readiness GET /readyz answers: the database, the backup store and
  // the workers (counts; with `details`, which workers are degraded or
  // silent and why, and why the store is unusable).
  nlohmann::json Readiness(bool details);

  // This process's counters for GET /metrics (Prometheus text): how the
  // read caches answered, and the connections.
  std::string ProcessMetrics() const;

  // The caller's last writes through this API, per table, as
  // db::ChangedTableWrites after them (0: none lately): what ReadCache::Get
  // must not answer a value older than. Recorded by Wrap after every
  // request that changed a notifying table (the handler's transactions on
  // its thread, db::ReportChangedTables), per API key, kept
  // kWriteFloorTtl (far longer than a re-read lasts).
  db::TableCounts WriteFloor(const Call& call) const;
  static constexpr std::chrono::seconds kWriteFloorTtl{60};

 private:
  // `written`: what the request's own transactions changed.
  void RecordWrite(const Call& call, const db::TableCounts& written);

  std::vector<ApiRoute> routes_;
  struct Floor {
    db::TableCounts written{};
    std::chrono::steady_clock::time_point at{};
  };
  mutable std::mutex floors_mu_;
  std::map<std::string, Floor> write_floors_;  // by API key id; guarded by floors_mu_
};

// Route families (each in its own file).
void AddProjectRoutes(ApiContext& api);  // projects (volume_routes.cc)
// GET /api/operations/{id} and its event stream .../events (operation_routes.cc)
void AddOperationRoutes(ApiContext& api);
void AddVolumeRoutes(ApiContext& api);  // /api/projects/{id}/volume... (volume_routes.cc)
// /api/projects/{id}/deploy, deployments, stop, start (deployment_routes.cc)
void AddDeploymentRoutes(ApiContext& api);
void AddMetaRoutes(ApiContext& api);      // /api/meta (platform_routes.cc)
void AddServerRoutes(ApiContext& api);    // servers, drain/activate (platform_routes.cc)
void AddSettingsRoutes(ApiContext& api);  // backup settings, audit events (platform_routes.cc)
// Users, organisations and their members, API keys (account_routes.cc)
void AddAccountRoutes(ApiContext& api);
// Quarantined images, the backup store history (platform_routes.cc).
void AddQuarantineRoutes(ApiContext& api);
// Backups in the stores the database lacks: rescan, orphans, assignment
// (platform_routes.cc).
void AddBackupRescanRoutes(ApiContext& api);
// GET /api/platform/health: control-plane backups (the last stored check,
// stale when old) and the servers' heartbeats (platform_routes.cc).
void AddHealthRoutes(ApiContext& api);
// The web dashboard: GET / and GET /assets/{name} (dashboard_routes.cc).
void AddDashboardRoutes(ApiContext& api);
// GET /metrics' text (platform_routes.cc), with the control-plane backup
// gauges of the last stored check.
[[nodiscard]] ControlResult<std::string> Metrics(db::Database& db);

}  // namespace kindling::api
