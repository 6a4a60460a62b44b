#include "edge/edge_proxy.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/socket.h>

#include <initializer_list>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace kindling::edge {

namespace {

using SteadyClock = std::chrono::steady_clock;

// What the access log line needs to know about the request being served on
// this thread. httplib calls the pre-routing handler, the route handler, the
// error handler and the logger of one request on the same worker thread, and
// its Request has no room for our own data.
struct RequestLog {
  bool started = false;  // the pre-routing handler ran (the request was parsed)
  bool handled = false;  // our handler wrote the answer (the error handler keeps out)
  SteadyClock::time_point start{};
  std::string backend = "-";
};
thread_local RequestLog t_request;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool IsOneOf(std::string_view name, std::initializer_list<std::string_view> names) {
  for (auto candidate : names) {
    if (EqualsIgnoreCase(name, candidate)) return true;
  }
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Hop-by-hop headers (RFC 9110 7.6.1) and the ones a Connection header names.
class HopByHop {
 public:
  explicit HopByHop(const httplib::Headers& headers) {
    auto [begin, end] = headers.equal_range("Connection");
    for (auto it = begin; it != end; ++it) {
      std::string_view value = it->second;
      while (!value.empty()) {
        const auto comma = value.find(',');
        const std::string_view token = Trim(value.substr(0, comma));
        if (!token.empty()) named_.emplace_back(token);
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
      }
    }
  }

  bool Contains(std::string_view name) const {
    if (IsOneOf(name, {"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
                       "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade"})) {
      return true;
    }
    for (const auto& named : named_) {
      if (EqualsIgnoreCase(name, named)) return true;
    }
    return false;
  }

 private:
  std::vector<std::string> named_;
};

// Host and path come from the client: keep log lines one line and short.
std::string Printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  for (char c : s.substr(0, max)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// The edge's own answers: a small page, never cached.
void WritePage(httplib::Response& res, int status, std::string_view title,
               std::string_view message) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(fmt::format("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{} {}"
                              "</title></head>\n<body><h1>{} {}</h1>\n<p>{}</p>\n"
                              "<hr><p>kindling edge</p></body></html>\n",
                              status, title, status, title, HtmlEscape(message)),
                  "text/html; charset=utf-8");
}

bool IsIdempotentRead(const std::string& method) { return method == "GET" || method == "HEAD"; }

std::string MetricLabel(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

struct EdgeProxy::Impl {
  Impl(RouteTable& routes, EdgeProxyOptions opts) : table(routes), options(std::move(opts)) {}

  RouteTable& table;
  const EdgeProxyOptions options;
  httplib::Server server;
  std::thread thread;
  std::mutex mu;  // Start/Stop
  int bound_port = -1;
  bool started = false;

  std::array<std::atomic<std::uint64_t>, 5> responses{};
  std::atomic<std::uint64_t> connect_failures{0};
  std::atomic<std::uint64_t> backend_failures{0};
  std::atomic<std::uint64_t> retries{0};

  void Configure() {
    const int workers = std::max(options.worker_threads, 1);
    server.new_task_queue = [workers] {
      return new httplib::ThreadPool(static_cast<std::size_t>(workers));
    };
    // httplib's default sets SO_REUSEPORT, with which a second process could
    // bind the same port and silently take part of the connections.
    server.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // Headers and body go out in separate writes; without this, Nagle's
    // algorithm holds the body back for the client's delayed ACK (~40 ms) on
    // every keep-alive request.
    server.set_tcp_nodelay(true);
    server.set_payload_max_length(options.max_body_bytes);
    server.set_read_timeout(options.client_timeout);
    server.set_write_timeout(options.client_timeout);
    server.set_keep_alive_timeout(std::max<time_t>(options.keep_alive_timeout.count(), 1));

    server.set_pre_routing_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response&) {
          t_request = RequestLog{.started = true, .start = SteadyClock::now()};
          return httplib::Server::HandlerResponse::Unhandled;
        }));
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Handle(req, res);
    };
    const std::string any = ".*";
    server.Get(any, handler);  // and HEAD
    server.Post(any, handler);
    server.Put(any, handler);
    server.Patch(any, handler);
    server.Delete(any, handler);
    server.Options(any, handler);

    // Answers httplib gives before our handler runs (413, 400, ...) get a page
    // too; proxied answers, 4xx and 5xx included, pass untouched.
    server.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
          if (t_request.handled) return httplib::Server::HandlerResponse::Unhandled;
          if (res.status == 413) {
            WritePage(res, 413, "Payload Too Large", "The request body is larger than allowed.");
          } else {
            WritePage(res, res.status, res.status == 400 ? "Bad Request" : "Error",
                      "The edge could not handle this request.");
          }
          return httplib::Server::HandlerResponse::Handled;
        }));
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          t_request.handled = true;
          res.headers.clear();
          res.body.clear();
          WritePage(res, 502, "Bad Gateway", "The edge failed while handling this request.");
        });
    server.set_logger(
        [this](const httplib::Request& req, const httplib::Response& res) { Log(req, res); });
  }

  void Log(const httplib::Request& req, const httplib::Response& res) {
    if (res.status >= 100 && res.status < 600) {
      ++responses[static_cast<std::size_t>(res.status / 100 - 1)];
    }
    std::string duration = "-";
    if (t_request.started) {
      const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
          SteadyClock::now() - t_request.start);
      duration = fmt::format("{:.1f}ms", static_cast<double>(elapsed.count()) / 1000.0);
    }
    spdlog::info("edge {} {} {} {} backend={} {}", Printable(req.method, 16),
                 Printable(req.get_header_value("Host")), Printable(req.path), res.status,
                 t_request.backend, duration);
    t_request = RequestLog{};
  }

  void Handle(const httplib::Request& req, httplib::Response& res) {
    t_request.handled = true;
    // httplib parsed any Range header and would cut the answer to it again on
    // the way out; the backend already did. `req` is httplib's own non-const
    // Request, so the cast is defined.
    const_cast<httplib::Request&>(req).ranges.clear();

    if (IsIdempotentRead(req.method) && req.path == options.health_path) {
      res.set_header("Cache-Control", "no-store");
      res.set_content("ok\n", "text/plain");
      return;
    }

    const std::string hostname = NormalizeHostname(req.get_header_value("Host"));
    auto picked = table.Pick(hostname);
    if (!picked) {
      WriteNoBackend(res, hostname, picked.error());
      return;
    }

    httplib::Request out = Outbound(req);
    Backend backend = std::move(*picked);
    for (int attempt = 0;; ++attempt) {
      t_request.backend = BackendAddress(backend);
      httplib::Response answer;
      httplib::Error error = httplib::Error::Success;
      if (Send(backend, out, answer, error)) {
        CopyAnswer(req, std::move(answer), res);
        return;
      }
      const bool connect_failed =
          error == httplib::Error::Connection || error == httplib::Error::ConnectionTimeout;
      if (connect_failed) {
        ++connect_failures;
        if (table.MarkUnhealthy(backend)) {
          spdlog::warn("edge: backend {} ({}) of {} is down: {}", BackendAddress(backend),
                       backend.instance_id, Printable(hostname), httplib::to_string(error));
        }
      } else {
        ++backend_failures;
      }
      if (attempt == 0 && (connect_failed || IsIdempotentRead(req.method))) {
        if (auto other = table.Pick(hostname, &backend)) {
          ++retries;
          backend = std::move(*other);
          continue;
        }
      }
      if (connect_failed && !table.HasHealthyBackend(hostname)) {
        WriteNoBackend(res, hostname, PickError::kNoHealthyBackend);
      } else {
        WritePage(
            res, 502, "Bad Gateway",
            fmt::format("The instance of {} serving this request failed to answer.", hostname));
      }
      return;
    }
  }

  static void WriteNoBackend(httplib::Response& res, const std::string& hostname, PickError why) {
    if (why == PickError::kUnknownHost) {
      WritePage(
          res, 404, "Not Found",
          fmt::format("No service is published at {}.", hostname.empty() ? "(no host)" : hostname));
    } else {
      res.set_header("Retry-After", "5");
      WritePage(res, 503, "Service Unavailable", fmt::format("No instance of {} is up.", hostname));
    }
  }

  httplib::Request Outbound(const httplib::Request& req) const {
    httplib::Request out;
    out.method = req.method;
    out.path = req.target;  // as received: encoded path and query
    out.body = req.body;

    const HopByHop hop(req.headers);
    std::string forwarded_for;
    for (const auto& [name, value] : req.headers) {
      if (EqualsIgnoreCase(name, "X-Forwarded-For")) {
        if (!forwarded_for.empty()) forwarded_for += ", ";
        forwarded_for += value;
        continue;
      }
      if (hop.Contains(name) ||
          IsOneOf(name, {"Content-Length", "Expect", "X-Forwarded-Host", "X-Forwarded-Proto",
                         // httplib's pseudo headers of the client connection
                         "REMOTE_ADDR", "REMOTE_PORT", "LOCAL_ADDR", "LOCAL_PORT"})) {
        continue;
      }
      out.headers.emplace(name, value);
    }
    if (!forwarded_for.empty()) forwarded_for += ", ";
    forwarded_for += req.remote_addr;
    out.headers.emplace("X-Forwarded-For", forwarded_for);
    const std::string host = req.get_header_value("Host");
    if (!host.empty()) out.headers.emplace("X-Forwarded-Host", host);
    out.headers.emplace("X-Forwarded-Proto", options.forwarded_proto);
    return out;
  }

  bool Send(const Backend& backend, httplib::Request& out, httplib::Response& answer,
            httplib::Error& error) const {
    try {
      httplib::Client client(backend.host, backend.port);
      client.set_connection_timeout(options.connect_timeout);
      client.set_read_timeout(options.backend_timeout);
      client.set_write_timeout(options.backend_timeout);
      client.set_keep_alive(false);
      client.set_tcp_nodelay(true);  // as for the server side
      client.set_decompress(false);  // Content-Encoding passes through
      client.set_url_encode(false);  // the target is already encoded
      client.set_follow_location(false);
      return client.send(out, answer, error);
    } catch (const std::exception&) {
      error = httplib::Error::Unknown;
      return false;
    }
  }

  static void CopyAnswer(const httplib::Request& req, httplib::Response answer,
                         httplib::Response& res) {
    res.status = answer.status;
    const HopByHop hop(answer.headers);
    const bool has_body = !answer.body.empty();
    std::string content_type;
    for (auto& [name, value] : answer.headers) {
      if (hop.Contains(name)) continue;
      if (has_body && EqualsIgnoreCase(name, "Content-Length")) continue;
      if (has_body && EqualsIgnoreCase(name, "Content-Type")) {
        content_type = value;
        continue;
      }
      res.headers.emplace(name, value);
    }
    if (!has_body || req.method == "HEAD") return;
    // A content provider, unlike res.body, is never compressed again by httplib.
    if (content_type.empty()) content_type = "application/octet-stream";
    auto body = std::make_shared<std::string>(std::move(answer.body));
    res.set_content_provider(
        body->size(), content_type,
        [body](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
          return sink.write(body->data() + offset, length);
        });
  }
};

EdgeProxy::EdgeProxy(RouteTable& table, EdgeProxyOptions options)
    : impl_(std::make_unique<Impl>(table, std::move(options))) {
  impl_->Configure();
}

EdgeProxy::~EdgeProxy() { Stop(); }

Status EdgeProxy::Start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return InvalidArgument("edge proxy already started");
  const std::string& address = impl_->options.listen_address;
  try {
    int port = impl_->options.port;
    if (port == 0) {
      port = impl_->server.bind_to_any_port(address);
    } else if (!impl_->server.bind_to_port(address, port)) {
      port = -1;
    }
    if (port < 0) {
      return IoError("cannot listen on " + address + ":" + std::to_string(impl_->options.port));
    }
    impl_->bound_port = port;
    impl_->started = true;
    impl_->thread = std::thread([impl = impl_.get()] { impl->server.listen_after_bind(); });
  } catch (const std::exception& e) {
    return IoError(std::string("cannot start the edge proxy: ") + e.what());
  }
  // stop() does nothing until the accept loop runs.
  while (!impl_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return OkStatus();
}

void EdgeProxy::Stop() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->started) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->started = false;
}

int EdgeProxy::port() const { return impl_->bound_port; }

EdgeProxyCounters EdgeProxy::counters() const {
  EdgeProxyCounters out;
  for (std::size_t i = 0; i < out.responses.size(); ++i) out.responses[i] = impl_->responses[i];
  out.connect_failures = impl_->connect_failures;
  out.backend_failures = impl_->backend_failures;
  out.retries = impl_->retries;
  return out;
}

std::string EdgeProxy::MetricsText() const {
  const EdgeProxyCounters c = counters();
  std::string out;
  out += "# HELP kindling_edge_responses_total Answers of the edge by status class.\n";
  out += "# TYPE kindling_edge_responses_total counter\n";
  for (std::size_t i = 0; i < c.responses.size(); ++i) {
    out +=
        fmt::format("kindling_edge_responses_total{{class=\"{}xx\"}} {}\n", i + 1, c.responses[i]);
  }
  auto counter = [&out](std::string_view name, std::string_view help, std::uint64_t value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, value);
  };
  counter("kindling_edge_backend_connect_failures_total",
          "Connections to backends that were refused or timed out.", c.connect_failures);
  counter("kindling_edge_backend_failures_total",
          "Backend exchanges that broke off or timed out after the request was sent.",
          c.backend_failures);
  counter("kindling_edge_retries_total", "Requests sent again to a second backend.", c.retries);

  const auto routes = impl_->table.Summaries();
  out += "# HELP kindling_edge_routes Hostnames the edge routes.\n";
  out += "# TYPE kindling_edge_routes gauge\n";
  out += fmt::format("kindling_edge_routes {}\n", routes.size());
  out += "# HELP kindling_edge_route_backends Backends of each route by health.\n";
  out += "# TYPE kindling_edge_route_backends gauge\n";
  for (const auto& route : routes) {
    const std::string label = MetricLabel(route.hostname);
    out += fmt::format("kindling_edge_route_backends{{hostname=\"{}\",state=\"healthy\"}} {}\n",
                       label, route.healthy);
    out += fmt::format("kindling_edge_route_backends{{hostname=\"{}\",state=\"unhealthy\"}} {}\n",
                       label, route.backends - route.healthy);
  }
  return out;
}

}  // namespace kindling::edge
