#include "api/api_context.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <typeinfo>

#include "common/hex.h"
#include "common/log_fields.h"
#include "common/scrub.h"
#include "common/secret.h"
#include "control/backup_store.h"
#include "db/servers.h"

namespace kindling::api {
namespace {

constexpr std::size_t kMaxLoggedText = 2000;
constexpr std::size_t kMaxLoggedPath = 256;

// What the access log needs across httplib's hooks of one request, which
// all run on the thread serving that connection.
struct RequestLogState {
  std::chrono::steady_clock::time_point start{};     // the loop read its first byte
  std::chrono::steady_clock::time_point admitted{};  // routing began
  bool failure_logged = false;
  std::string route{};    // the matched route's template; empty: none matched
  std::string user_id{};  // the authenticated caller; empty: none
};
thread_local RequestLogState request_log_state;

std::string RequestId(httplib::Response& res) {
  std::string id = res.get_header_value(kRequestIdHeader);
  if (id.empty()) {
    id = NewRequestId();
    res.set_header(kRequestIdHeader, id);
  }
  return id;
}

// The Authorization header's value as httplib holds it (no copy: it carries
// the API key), empty when absent.
std::string_view AuthorizationHeader(const httplib::Request& req) {
  const auto it = req.headers.find("Authorization");
  return it == req.headers.end() ? std::string_view() : std::string_view(it->second);
}

// The credentials of a "Bearer <secret>" header, empty otherwise; the
// scheme's name in any case (RFC 7235).
std::string_view BearerSecret(std::string_view header) {
  constexpr std::string_view kBearer = "bearer ";
  if (header.size() < kBearer.size()) return {};
  for (std::size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kBearer[i]) return {};
  }
  return header.substr(kBearer.size());
}

std::string_view BearerSecret(const httplib::Request& req) {
  return BearerSecret(AuthorizationHeader(req));
}

// Wipes what a request brought that may be secret once it is handled: the
// body (backup settings carry the S3 secret key, key imports their keys) and
// the API key in the Authorization header. httplib hands handlers a const
// view of a request it owns and no longer reads.
void WipeRequestSecrets(const httplib::Request& req) {
  auto& request =
      const_cast<httplib::Request&>(req);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  WipeString(request.body);
  for (auto [it, end] = request.headers.equal_range("Authorization"); it != end; ++it) {
    WipeString(it->second);
  }
}

// httplib keeps the query string out of req.path.
std::string LoggedPath(const httplib::Request& req) {
  return req.path.substr(0, std::min(req.path.size(), kMaxLoggedPath));
}

}  // namespace

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string ExceptionCause(std::exception_ptr error) {
  if (!error) return "unexpected exception";
  try {
    std::rethrow_exception(error);
  } catch (const json::exception& e) {
    return "unexpected JSON exception (id " + std::to_string(e.id) + ")";
  } catch (const std::exception& e) {
    return std::string("unexpected exception: ") + e.what();
  } catch (...) {
    return "unexpected exception";
  }
}

std::string NewRequestId() {
  unsigned char bytes[16];
  crypto::RandomBytes(bytes, sizeof(bytes));
  return HexEncode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::string ScrubForLog(std::string_view text, std::string_view secret) {
  std::string out = db::RedactDsn(text);
  out = ScrubSecrets(out, {secret}, "[api key]");
  if (out.size() > kMaxLoggedText) {
    out.resize(kMaxLoggedText);
    out += "...";
  }
  return out;
}

void ApiContext::Fail(const httplib::Request& req, httplib::Response& res,
                      const ControlError& error) {
  if (error.http_status < 500) {
    WriteError(res, error.http_status, error.code, error.message);
    return;
  }
  const std::string id = RequestId(res);
  const std::string& cause = error.internal.empty() ? error.message : error.internal;
  spdlog::error("request failed{}{}{}{}{}{}", LogField("request_id", id),
                LogField("method", req.method), LogField("path", LoggedPath(req)),
                LogField("status", std::to_string(error.http_status)), LogField("code", error.code),
                LogField("error", ScrubForLog(cause, BearerSecret(req))));
  request_log_state.failure_logged = true;
  WriteError(res, error.http_status, error.code,
             error.http_status == 500 ? "internal error (request id " + id + ")" : error.message);
}

std::string ApiContext::ProcessMetrics() const {
  std::string out =
      "# HELP kindling_api_read_cache_gets_total Reads through this API process's read caches, "
      "by cache and how they were answered (hit: current value kept; stale: the value from "
      "before a re-read running; joined: another request's read; read: a database read of "
      "their own).\n"
      "# TYPE kindling_api_read_cache_gets_total counter\n";
  auto cache = [&out](std::string_view name, std::uint64_t hit, std::uint64_t stale,
                      std::uint64_t joined, std::uint64_t read) {
    for (const auto& [answer, count] : {std::pair<std::string_view, std::uint64_t>{"hit", hit},
                                        {"stale", stale},
                                        {"joined", joined},
                                        {"read", read}}) {
      out += fmt::format("kindling_api_read_cache_gets_total{{cache=\"{}\",answer=\"{}\"}} {}\n",
                         name, answer, count);
    }
  };
  cache("volume", volume_views.hits(), volume_views.stale_hits(), volume_views.joined(),
        volume_views.reads());
  cache("servers", org_servers.hits(), org_servers.stale_hits(), org_servers.joined(),
        org_servers.reads());
  const http::ConnectionLoopStats loop =
      connections != nullptr ? connections->stats() : http::ConnectionLoopStats{};
  out += fmt::format(
      "# HELP kindling_api_connections Connections open to this API process.\n"
      "# TYPE kindling_api_connections gauge\n"
      "kindling_api_connections {}\n"
      "# HELP kindling_api_connections_accepted_total Connections this API process took.\n"
      "# TYPE kindling_api_connections_accepted_total counter\n"
      "kindling_api_connections_accepted_total {}\n"
      "# HELP kindling_api_connections_refused_total Connections this API process closed at "
      "once, its maximum being open.\n"
      "# TYPE kindling_api_connections_refused_total counter\n"
      "kindling_api_connections_refused_total {}\n"
      "# HELP kindling_api_threads Threads of this API process's connection loop, those waiting "
      "for PostgreSQL or a client included.\n"
      "# TYPE kindling_api_threads gauge\n"
      "kindling_api_threads {}\n",
      loop.connections, loop.accepted, loop.refused, loop.threads);
  return out;
}

void ApiContext::InstallRequestLog(httplib::Server& server) {
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    request_log_state = {.start = http::ConnectionLoop::RequestArrival(),
                         .admitted = std::chrono::steady_clock::now(),
                         .failure_logged = false};
    const std::string sent = req.get_header_value(kRequestIdHeader);
    res.set_header(kRequestIdHeader, IsSaneRequestId(sent) ? sent : NewRequestId());
    // A request with neither Content-Length nor Transfer-Encoding has no
    // body (RFC 9110, 6.4.1): said so, or httplib would wait for one until
    // its read timeout and answer 400 before the route could say 401.
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      auto& request =
          const_cast<httplib::Request&>(req);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
      request.headers.emplace("Content-Length", "0");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Also runs for requests httplib refused before routing (malformed, URI
  // too long), which have no id yet.
  server.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.has_header(kRequestIdHeader)) {
      const auto now = std::chrono::steady_clock::now();
      request_log_state = {.start = http::ConnectionLoop::RequestArrival(),
                           .admitted = now,
                           .failure_logged = false};
      RequestId(res);
    }
  });
  // After the answer is written.
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    const std::string id = res.get_header_value(kRequestIdHeader);
    if (res.status >= 500 && !request_log_state.failure_logged) {
      spdlog::error("request failed{}{}{}{}{}", LogField("request_id", id),
                    LogField("method", req.method), LogField("path", LoggedPath(req)),
                    LogField("status", std::to_string(res.status)),
                    LogField("error", "answered by the HTTP server (no route logged a cause)"));
    }
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    const auto elapsed =
        duration_cast<milliseconds>(std::chrono::steady_clock::now() - request_log_state.start);
    const auto queued =
        duration_cast<milliseconds>(request_log_state.admitted - request_log_state.start);
    spdlog::info("request{}{}{}{}{}{}{}{}{}", LogField("request_id", id),
                 LogField("method", req.method), LogField("path", LoggedPath(req)),
                 LogField("route", request_log_state.route.empty() ? std::string("-")
                                                                   : request_log_state.route),
                 LogField("status", std::to_string(res.status)),
                 LogField("duration_ms", std::to_string(elapsed.count())),
                 LogField("queued_ms", std::to_string(queued.count())),
                 LogField("user_id", request_log_state.user_id.empty() ? std::string("-")
                                                                       : request_log_state.user_id),
                 LogField("remote_addr", req.remote_addr));
  });
}

ApiContext::ApiContext(db::Database& database, const crypto::Key& key, ApiServerOptions opts,
                       httplib::Server& http_server)
    : db(database),
      master_key(key),
      options(std::move(opts)),
      volumes(database, key),
      deployments(database),
      auth_cache(options.auth_cache_ttl, options.auth_cache_entries, options.clock),
      server(http_server),
      change_watch(database.options().dsn),
      volume_views(&change_watch,
                   ChangeWatch::kProjects | ChangeWatch::kProjectVolumes |
                       ChangeWatch::kOperations | ChangeWatch::kBackups,
                   options.read_cache_entries),
      org_servers(&change_watch,
                  ChangeWatch::kServers | ChangeWatch::kServerComponents |
                      ChangeWatch::kProjectVolumes | ChangeWatch::kProjects,
                  options.read_cache_entries),
      event_streams(options.event_streams),
      health([&database] { return database.Ping(); }, options.health_fresh),
      store_probe(
          [&database, &key]() -> Status {
            KINDLING_ASSIGN_OR_RETURN(
                control::BackupStoreSettings settings,
                database.Transact(
                    [&](db::Tx& tx) { return control::LoadBackupStoreSettings(tx, key); },
                    db::TxOptions{.read_only = true}));
            if (std::string missing = settings.MissingReason(); !missing.empty())
              return FailedPrecondition("not configured: " + missing);
            KINDLING_RETURN_IF_ERROR(control::OpenBackupStore(settings, key, nullptr, true));
            return OkStatus();
          },
          options.store_probe_fresh) {}

nlohmann::json ApiContext::Readiness(bool details) {
  const Status database = health.Check();
  const Status store = database ? store_probe.Check() : Status(database);
  json workers = {{"total", 0}, {"healthy", 0}, {"degraded", 0}, {"silent", 0}};
  json problems = json::array();
  if (database) {
    auto servers = db.Transact([](db::Tx& tx) { return db::ListServers(tx); },
                               db::TxOptions{.read_only = true});
    for (const db::Server& s : servers ? *servers : std::vector<db::Server>{}) {
      if (s.status != db::ServerStatus::kActive) continue;
      const auto worker =
          std::find_if(s.components.begin(), s.components.end(),
                       [](const db::ComponentStatus& c) { return c.component == "worker"; });
      if (worker == s.components.end()) continue;
      workers["total"] = workers["total"].get<int>() + 1;
      const bool silent = db::HeartbeatHealth(s) != "healthy";
      const bool degraded = worker->status == db::ComponentHealth::kDegraded;
      const char* state = silent ? "silent" : degraded ? "degraded" : "healthy";
      workers[state] = workers[state].get<int>() + 1;
      if (details && (silent || degraded)) {
        problems.push_back(
            json{{"id", s.id},
                 {"hostname", s.hostname},
                 {"state", state},
                 {"error",
                  worker->last_error_message ? json(*worker->last_error_message) : json(nullptr)}});
      }
    }
  }
  json store_json = {{"ok", static_cast<bool>(store)}};
  if (details && !store) store_json["error"] = store.error().message();
  if (details) workers["problems"] = problems;
  return json{{"ready", database && store && workers["healthy"].get<int>() > 0},
              {"database", {{"ok", static_cast<bool>(database)}}},
              {"backup_store", store_json},
              {"workers", workers}};
}

void ApiContext::WriteError(httplib::Response& res, int status, std::string_view code,
                            std::string_view message) {
  res.status = status;
  res.set_content(json{{"error", message}, {"code", code}}.dump(), "application/json");
}

ControlResult<db::Principal> ApiContext::Authenticate(const httplib::Request& req) {
  const std::string_view header = AuthorizationHeader(req);
  if (header.empty()) {
    return Refuse(401, control::kCodeUnauthorized, "missing Authorization: Bearer <api key>");
  }
  const std::string_view secret = BearerSecret(header);
  if (secret.empty()) {
    return Refuse(401, control::kCodeUnauthorized,
                  "the Authorization header must be \"Bearer <api key>\"");
  }
  auto principal = auth_cache.Get(secret, [&] {
    return db.Transact([&](db::Tx& tx) { return db::AuthenticateApiKey(tx, secret); });
  });
  if (!principal) return std::unexpected(control::FromError(principal.error()));
  if (!*principal) {
    return Refuse(401, control::kCodeUnauthorized, "invalid or revoked API key");
  }
  return std::move(**principal);
}

httplib::Server::Handler ApiContext::Wrap(Handler handler, bool authenticate) {
  return [this, handler = std::move(handler), authenticate](const httplib::Request& req,
                                                            httplib::Response& res) {
    struct WipeOnReturn {
      const httplib::Request& req;
      ~WipeOnReturn() { WipeRequestSecrets(req); }
    } wipe{req};
    try {
      Call call{.req = req, .principal = {}, .actor = {}};
      if (authenticate) {
        auto principal = Authenticate(req);
        if (!principal) {
          Fail(req, res, principal.error());
          return;
        }
        call.principal = std::move(*principal);
        call.actor.user_id = call.principal.user.id;
        request_log_state.user_id = call.principal.user.id;
      }
      call.actor.request_ip = req.remote_addr;
      if (req.has_header("User-Agent")) call.actor.user_agent = req.get_header_value("User-Agent");
      const db::ReportChangedTables writes;
      auto reply = handler(call);
      RecordWrite(call, writes.changed());
      if (!reply) {
        Fail(req, res, reply.error());
        return;
      }
      res.status = reply->status;
      if (reply->stream) {
        res.set_header("Cache-Control", "no-store");
        res.set_chunked_content_provider("text/event-stream", std::move(reply->stream),
                                         std::move(reply->stream_closed));
      } else if (reply->status != 204) {
        res.set_content(reply->body.dump(), "application/json");
      }
    } catch (...) {
      // Never echo the exception: it may quote the request.
      Fail(req, res,
           ControlError{500, control::kCodeInternal, "internal error",
                        ExceptionCause(std::current_exception())});
    }
  };
}

void ApiContext::RecordWrite(const Call& call, const db::TableCounts& written) {
  if (call.principal.api_key.id.empty() || written == db::TableCounts{}) return;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(floors_mu_);
  if (write_floors_.size() >= options.auth_cache_entries &&
      !write_floors_.contains(call.principal.api_key.id)) {
    std::erase_if(write_floors_, [&](const auto& f) { return now - f.second.at > kWriteFloorTtl; });
    if (write_floors_.size() >= options.auth_cache_entries) write_floors_.clear();
  }
  Floor& floor = write_floors_[call.principal.api_key.id];
  // The counts only grow: the larger of two is the later write.
  for (std::size_t i = 0; i < written.size(); ++i)
    floor.written[i] = std::max(floor.written[i], written[i]);
  floor.at = now;
}

db::TableCounts ApiContext::WriteFloor(const Call& call) const {
  std::lock_guard lock(floors_mu_);
  const auto it = write_floors_.find(call.principal.api_key.id);
  if (it == write_floors_.end() ||
      std::chrono::steady_clock::now() - it->second.at > kWriteFloorTtl) {
    return {};
  }
  return it->second.written;
}

ControlResult<db::Project> ApiContext::AccessProject(const Call& call, std::size_t index,
                                                     bool need_admin) {
  API_ASSIGN_OR_RETURN(std::string project_id, call.PathId(index, "project"));
  auto project =
      db.Transact([&](db::Tx& tx) { return db::GetProject(tx, project_id); }, db::kAutocommitRead);
  if (!project) {
    if (project.error().is_not_found()) {
      return Refuse(404, control::kCodeNotFound, "project " + project_id + " does not exist");
    }
    return std::unexpected(control::FromError(project.error()));
  }
  API_RETURN_IF_ERROR(CheckProjectAccess(call, *project, need_admin));
  return std::move(*project);
}

ControlResult<void> ApiContext::CheckProjectAccess(const Call& call, const db::Project& project,
                                                   bool need_admin) {
  if (call.IsAdmin()) return {};
  auto role = call.principal.RoleIn(project.organization_id);
  if (!role) {
    return Refuse(404, control::kCodeNotFound, "project " + project.id + " does not exist");
  }
  if (need_admin && *role == db::OrgRole::kMember) {
    return Refuse(403, control::kCodeForbidden,
                  "this action needs the owner or admin role in the project's organisation");
  }
  return {};
}

void ApiContext::Route(std::string_view method, const std::string& pattern, Handler handler,
                       Access access) {
  RawRoute(method, pattern, Wrap(std::move(handler), access == Access::kAuthenticated), access);
}

void ApiContext::RawRoute(std::string_view method, const std::string& pattern,
                          httplib::Server::Handler handler, Access access) {
  // The access log names the route by its template: "([^/]+)" as "{id}".
  std::string route = pattern;
  for (std::size_t at; (at = route.find("([^/]+)")) != std::string::npos;)
    route.replace(at, 7, "{id}");
  handler = [route = std::move(route), inner = std::move(handler)](const httplib::Request& req,
                                                                   httplib::Response& res) {
    request_log_state.route = route;
    inner(req, res);
  };
  if (method == "GET") {
    server.Get(pattern, std::move(handler));
  } else if (method == "POST") {
    server.Post(pattern, std::move(handler));
  } else if (method == "PUT") {
    server.Put(pattern, std::move(handler));
  } else if (method == "DELETE") {
    server.Delete(pattern, std::move(handler));
  } else {
    throw std::logic_error("unsupported method " + std::string(method));
  }
  routes_.push_back(ApiRoute{.method = std::string(method), .pattern = pattern, .access = access});
}

namespace {
// Whether `path` has the shape of a route `pattern`: the same segments, where
// a capture ("([^/]+)" and the like) stands for any one non-empty segment.
// Looser than the route's regex: enough to tell a 405 from a 404.
bool SameShape(std::string_view pattern, std::string_view path) {
  while (!pattern.empty() && !path.empty()) {
    // A capture may hold '/' in its character class: it ends at its ')'.
    const bool capture = pattern.size() > 1 && pattern[1] == '(';
    const std::size_t pattern_end = capture ? std::min(pattern.find(')'), pattern.size() - 1) + 1
                                            : std::min(pattern.find('/', 1), pattern.size());
    const std::size_t path_end = std::min(path.find('/', 1), path.size());
    const std::string_view want = pattern.substr(0, pattern_end);
    const std::string_view have = path.substr(0, path_end);
    if (capture ? have.size() < 2 : want != have) return false;
    pattern.remove_prefix(pattern_end);
    path.remove_prefix(path_end);
  }
  return pattern.empty() && path.empty();
}
}  // namespace

std::string ApiContext::MethodsOf(const std::string& path) const {
  std::vector<std::string> methods;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    if (!SameShape(routes_[i].pattern, path)) continue;
    if (std::find(methods.begin(), methods.end(), routes_[i].method) == methods.end())
      methods.push_back(routes_[i].method);
  }
  return fmt::format("{}", fmt::join(methods, ", "));
}

}  // namespace kindling::api
