#include "runtime/http_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

#include "common/files.h"

namespace kindling::vmm {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Waits for `events` on `fd` until `deadline`; false on timeout or error.
bool WaitFor(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, events, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0;
  }
}

}  // namespace

Result<int> HttpGetStatus(std::uint16_t port, std::string_view path,
                          std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  const std::string where = "127.0.0.1:" + std::to_string(port);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return TransientError("connect " + where + ": " + strerror(errno));
    if (!WaitFor(fd.get(), POLLOUT, deadline))
      return TransientError("connect " + where + ": timeout");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return TransientError("connect " + where + ": " + strerror(err));
  }
  const std::string request =
      "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + where + "\r\nConnection: close\r\n\r\n";
  std::string_view rest = request;
  while (!rest.empty()) {
    const ssize_t n = ::send(fd.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
      if (!WaitFor(fd.get(), POLLOUT, deadline)) return TransientError(where + ": send timeout");
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return TransientError("send to " + where + ": " + strerror(errno));
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  std::string answer;
  while (answer.find("\r\n") == std::string::npos) {
    if (!WaitFor(fd.get(), POLLIN, deadline)) return TransientError(where + ": no answer in time");
    char chunk[1024];
    const ssize_t n = ::recv(fd.get(), chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return TransientError("read from " + where + ": " + strerror(errno));
    if (n == 0) return TransientError(where + " closed the connection without an answer");
    answer.append(chunk, static_cast<std::size_t>(n));
  }
  // "HTTP/1.1 200 OK"
  const std::size_t space = answer.find(' ');
  int status = 0;
  if (!answer.starts_with("HTTP/") || space == std::string::npos ||
      std::from_chars(answer.data() + space + 1, answer.data() + answer.size(), status).ec !=
          std::errc())
    return TransientError(where + " answered something that is not HTTP");
  return status;
}

}  // namespace kindling::vmm
