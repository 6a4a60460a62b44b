#include "api/api_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "api/api_context.h"
#include "db/notifications.h"
#include "http/connection_loop.h"
#include "http/loop_server.h"

namespace kindling::api {
namespace {

constexpr int kListenBacklog = 1024;  // capped by net.core.somaxconn

// The reason OpenSSL's last call failed (its queue is per thread), cleared.
std::string OpenSslError() {
  const unsigned long code = ERR_peek_last_error();
  char text[256] = {};
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return code != 0 ? text : "unknown error";
}

// Loads the certificate chain and key into `ctx`; false with `error` set
// when they cannot be used.
bool SetUpTls(SSL_CTX& ctx, const ApiServerOptions& options, std::string& error) {
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    error = "TLS needs both a certificate file and a key file";
    return false;
  }
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, options.tls_cert_file.c_str()) != 1) {
    error = "cannot load the TLS certificate " + options.tls_cert_file + ": " + OpenSslError();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, options.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL compares the key with the certificate as it loads it.
    const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    error = (mismatch ? "the TLS key " + options.tls_key_file +
                            " is not the key of the certificate " + options.tls_cert_file
                      : "cannot load the TLS key " + options.tls_key_file) +
            ": " + OpenSslError();
    return false;
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    error = "the TLS key " + options.tls_key_file + " is not the key of the certificate " +
            options.tls_cert_file + ": " + OpenSslError();
    return false;
  }
  return true;
}

// A LoopServer over SSLServer when the options ask for TLS (its is_valid()
// false, with `tls_error` set, when the files cannot be used), else over a
// plain Server.
std::unique_ptr<httplib::Server> MakeHttpServer(const ApiServerOptions& options,
                                                std::string& tls_error) {
  if (options.tls_cert_file.empty() && options.tls_key_file.empty()) {
    return std::make_unique<http::LoopServer<httplib::Server>>();
  }
  return std::make_unique<http::LoopServer<httplib::SSLServer>>(
      [&options, &tls_error](SSL_CTX& ctx) { return SetUpTls(ctx, options, tls_error); });
}

}  // namespace

struct ApiServer::Impl {
  Impl(db::Database& database, const crypto::Key& key, ApiServerOptions opts)
      : http_server(MakeHttpServer(opts, tls_error)),
        api(database, key, std::move(opts), *http_server) {}

  std::string tls_error;  // why the TLS server is not valid
  std::unique_ptr<httplib::Server> http_server;
  ApiContext api;
  // Serves the accepted connections while started.
  std::unique_ptr<http::ConnectionLoop> connections;
  std::thread thread;
  std::atomic<bool> thread_done{false};  // listen_after_bind returned
  std::mutex mu;
  int bound_port = -1;
  socket_t listen_socket = INVALID_SOCKET;
  bool started = false;

  void Routes() {
    api.Route(
        "GET", "/healthz",
        [this](Call&) -> ControlResult<Reply> {
          if (auto ping = api.health.Check(); !ping) {
            return Refuse(503, control::kCodeUnavailable, "database unreachable");
          }
          return Reply{200, json{{"status", "ok"}}};
        },
        RouteAccess::kPublic);
    // Readiness: whether this cluster can take backups and restores now.
    // Public, so counts only; platform admins see why in
    // /api/platform/health.
    api.Route(
        "GET", "/readyz",
        [this](Call&) -> ControlResult<Reply> {
          json ready = api.Readiness(false);
          if (ready["ready"].get<bool>()) return Reply{200, std::move(ready)};
          ready["error"] =
              "not ready: needs the database, a usable backup store and a healthy worker";
          ready["code"] = control::kCodeUnavailable;
          return Reply{503, std::move(ready)};
        },
        RouteAccess::kPublic);
    api.RawRoute(
        "GET", "/metrics",
        [this](const httplib::Request& req, httplib::Response& res) {
          if (!api.options.metrics_public) {
            auto principal = api.Authenticate(req);
            if (!principal) {
              ApiContext::Fail(req, res, principal.error());
              return;
            }
            if (!principal->user.is_platform_admin) {
              ApiContext::WriteError(res, 403, control::kCodeForbidden,
                                     "metrics need a platform admin");
              return;
            }
          }
          auto text = Metrics(api.db);
          if (!text) {
            ApiContext::Fail(req, res, text.error());
            return;
          }
          res.set_content(*text + api.ProcessMetrics(), "text/plain; version=0.0.4");
        },
        api.options.metrics_public ? RouteAccess::kPublic : RouteAccess::kAuthenticated);
    AddMetaRoutes(api);
    AddServerRoutes(api);
    AddHealthRoutes(api);
    AddProjectRoutes(api);
    AddOperationRoutes(api);
    AddVolumeRoutes(api);
    AddDeploymentRoutes(api);
    AddSettingsRoutes(api);
    AddAccountRoutes(api);
    AddQuarantineRoutes(api);
    AddBackupRescanRoutes(api);
    AddDashboardRoutes(api);
  }
};

ApiServer::ApiServer(db::Database& db, const crypto::Key& master_key, ApiServerOptions options)
    : impl_(std::make_unique<Impl>(db, master_key, std::move(options))) {
  const ApiServerOptions& opts = impl_->api.options;
  impl_->api.server.new_task_queue = [] { return new http::RunAtOnce; };
  // httplib's default also sets SO_REUSEPORT, with which a second process
  // could bind the same port and silently take part of the connections.
  impl_->api.server.set_socket_options([impl = impl_.get()](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    impl->listen_socket = sock;  // the last one offered is the one bound
  });
  impl_->api.server.set_payload_max_length(opts.max_body_bytes);
  impl_->api.server.set_error_handler([impl = impl_.get()](const httplib::Request& req,
                                                           httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      ApiContext::WriteError(res, 413, "payload_too_large", "request body is larger than allowed");
    } else if (res.status == 404) {
      // A route known for other methods: 405, with the ones it has.
      const std::string allowed = impl->api.MethodsOf(req.path);
      if (!allowed.empty()) {
        res.set_header("Allow", allowed);
        ApiContext::WriteError(res, 405, "method_not_allowed",
                               req.method + " is not allowed here; allowed: " + allowed);
        return;
      }
      ApiContext::WriteError(res, 404, control::kCodeNotFound, "no such route");
    } else if (res.status == 400) {
      ApiContext::WriteError(res, 400, control::kCodeValidation, "malformed request");
    } else {
      ApiContext::WriteError(res, res.status, "error", "request failed");
    }
  });
  impl_->api.server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
        ApiContext::Fail(
            req, res,
            ControlError{500, control::kCodeInternal, "internal error", ExceptionCause(error)});
      });
  ApiContext::InstallRequestLog(impl_->api.server);
  impl_->Routes();
}

ApiServer::~ApiServer() { Stop(); }

const std::vector<ApiRoute>& ApiServer::routes() const { return impl_->api.routes(); }

Status ApiServer::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return InvalidArgument("API server already started");
  if (!impl_->http_server->is_valid()) {
    return InvalidArgument(impl_->tls_error.empty() ? "cannot set up TLS for the API server"
                                                    : impl_->tls_error);
  }
  try {
    int port = impl_->api.options.port;
    if (port == 0) {
      port = impl_->api.server.bind_to_any_port(impl_->api.options.listen_address);
    } else if (!impl_->api.server.bind_to_port(impl_->api.options.listen_address, port)) {
      port = -1;
    }
    if (port < 0) {
      return IoError("cannot listen on " + impl_->api.options.listen_address + ":" +
                     std::to_string(impl_->api.options.port));
    }
    // httplib listens with a backlog of 5: a burst of connections (64
    // clients starting at once) overflowed it, and the dropped handshakes
    // came back after the client's retransmission, seconds later. Listening
    // again on the bound socket only raises the backlog.
    if (impl_->listen_socket != INVALID_SOCKET) ::listen(impl_->listen_socket, kListenBacklog);
    const ApiServerOptions& opts = impl_->api.options;
    auto* served = dynamic_cast<http::LoopServed*>(impl_->http_server.get());
    auto* tls = dynamic_cast<httplib::SSLServer*>(impl_->http_server.get());
    impl_->connections = std::make_unique<http::ConnectionLoop>(
        http::ConnectionLoopOptions{.threads = opts.serving_threads,
                                    .max_threads = opts.max_threads,
                                    .max_connections = opts.max_connections,
                                    .keep_alive_timeout = opts.keep_alive_timeout,
                                    .keep_alive_max_count = opts.keep_alive_max_count,
                                    .max_body_bytes = opts.max_body_bytes},
        [served](httplib::Stream& stream, bool close_connection, bool& connection_closed) {
          return served->ServeOne(stream, close_connection, connection_closed);
        },
        tls != nullptr ? tls->ssl_context() : nullptr);
    if (Status started = impl_->connections->Start(); !started) {
      impl_->connections.reset();
      return started;
    }
    served->Attach(impl_->connections.get());
    impl_->api.connections = impl_->connections.get();
    impl_->bound_port = port;
    impl_->started = true;
    impl_->api.event_streams.Start();
    if (impl_->api.options.read_cache_entries > 0) impl_->api.change_watch.Start();
    impl_->thread_done = false;
    impl_->thread = std::thread([impl = impl_.get()] {
      impl->api.server.listen_after_bind();
      impl->thread_done = true;
    });
  } catch (const std::exception& e) {
    return IoError(std::string("cannot start the API server: ") + e.what());
  }
  return OkStatus();
}

void ApiServer::Stop() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->started) return;
  // Open event streams end now rather than when their operation does.
  impl_->api.event_streams.Stop();
  // httplib's stop() does nothing until the thread is in its accept loop: a
  // Stop() right after Start() (a SIGTERM as the process comes up) would
  // otherwise join a thread that never stops.
  while (!impl_->thread_done) {
    if (impl_->api.server.is_running()) {
      impl_->api.server.stop();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  // No connection comes in any more: the open ones end after their request.
  impl_->connections->Shutdown();
  impl_->api.change_watch.Stop();
  impl_->started = false;
}

int ApiServer::port() const { return impl_->bound_port; }

Status ApiServer::SyncChanges(std::chrono::milliseconds timeout) {
  if (impl_->api.options.read_cache_entries == 0) return OkStatus();
  return impl_->api.change_watch.Sync(
      [this](const std::string& payload) {
        return db::SendNotification(impl_->api.db, db::kChangesChannel, payload);
      },
      timeout);
}

}  // namespace kindling::api
