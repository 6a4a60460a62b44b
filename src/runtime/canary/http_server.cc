#include "runtime/canary/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>

namespace kindling::canary {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    default:
      return "Status";
  }
}

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away; nothing to tell it
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::unexpected<HttpResponse> Refuse(int status, std::string_view why) {
  return std::unexpected(HttpResponse{
      .status = status, .body = std::string(why) + "\n", .content_type = "text/plain"});
}

}  // namespace

std::expected<std::optional<HttpRequest>, HttpResponse> ParseHttpRequest(
    std::string_view received) {
  const std::size_t head_end = received.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (received.size() > kMaxRequestBytes) return Refuse(413, "request head too large");
    return std::optional<HttpRequest>();
  }
  std::string_view head = received.substr(0, head_end);
  HttpRequest request;
  const std::size_t line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);
  head.remove_prefix(line_end == std::string_view::npos ? head.size() : line_end + 2);
  const std::size_t sp1 = request_line.find(' ');
  const std::size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1 ||
      !request_line.substr(sp2 + 1).starts_with("HTTP/1."))
    return Refuse(400, "malformed request line");
  request.method = std::string(request_line.substr(0, sp1));
  request.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  if (request.method.empty() || request.target.empty() || request.target.front() != '/')
    return Refuse(400, "malformed request line");
  while (!head.empty()) {
    const std::size_t end = head.find("\r\n");
    const std::string_view line = head.substr(0, end);
    head.remove_prefix(end == std::string_view::npos ? head.size() : end + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Refuse(400, "malformed header line");
    request.headers[Lower(Trim(line.substr(0, colon)))] = std::string(Trim(line.substr(colon + 1)));
  }
  if (request.headers.contains("transfer-encoding"))
    return Refuse(411, "send Content-Length; Transfer-Encoding is not supported");
  std::uint64_t length = 0;
  if (auto it = request.headers.find("content-length"); it != request.headers.end()) {
    const std::string& text = it->second;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (ec != std::errc() || ptr != text.data() + text.size())
      return Refuse(400, "malformed Content-Length");
  }
  const std::size_t body_start = head_end + 4;
  if (length > kMaxRequestBytes || body_start + length > kMaxRequestBytes)
    return Refuse(413, "request too large");
  if (received.size() < body_start + length) return std::optional<HttpRequest>();
  request.body = std::string(received.substr(body_start, length));
  return std::optional<HttpRequest>(std::move(request));
}

std::string RenderHttpResponse(const HttpResponse& response) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                    std::string(Reason(response.status)) + "\r\n";
  out += "Content-Type: " + response.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += response.body;
  return out;
}

Result<HttpServer> HttpServer::Listen(const std::string& address, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1)
    return InvalidArgument("not an IPv4 address: " + address);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return ErrnoError("bind " + address + ":" + std::to_string(port), errno);
  if (::listen(fd.get(), 64) != 0) return ErrnoError("listen", errno);
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return ErrnoError("getsockname", errno);
  return HttpServer(std::move(fd), ntohs(addr.sin_port));
}

Status HttpServer::Serve(const Handler& handler, std::chrono::milliseconds idle_timeout) {
  while (!stop_->load()) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, 100);
    if (ready < 0 && errno != EINTR) return ErrnoError("poll", errno);
    if (ready <= 0) continue;
    UniqueFd client(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client.valid()) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      return ErrnoError("accept", errno);
    }
    HandleConnection(client.get(), handler, idle_timeout);
  }
  return OkStatus();
}

void HttpServer::HandleConnection(int fd, const Handler& handler,
                                  std::chrono::milliseconds idle_timeout) {
  std::string received;
  char buffer[16384];
  for (;;) {
    auto parsed = ParseHttpRequest(received);
    if (!parsed) {
      SendAll(fd, RenderHttpResponse(parsed.error()));
      return;
    }
    if (*parsed) {
      SendAll(fd, RenderHttpResponse(handler(**parsed)));
      return;
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(idle_timeout.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;  // idle client
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // closed before a whole request arrived
    received.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace kindling::canary
