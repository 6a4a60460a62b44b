#include "pgbackup/reachability.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace kindling::pgbackup {
namespace {

using SteadyClock = std::chrono::steady_clock;

// 0 when connected, an errno otherwise.
int ConnectOnce(const addrinfo& address, SteadyClock::time_point deadline) {
  const int fd = ::socket(address.ai_family, address.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          address.ai_protocol);
  if (fd < 0) return errno;
  int error = 0;
  if (::connect(fd, address.ai_addr, address.ai_addrlen) != 0) {
    error = errno;
    while (error == EINPROGRESS || error == EINTR) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) {
        error = ETIMEDOUT;
        break;
      }
      pollfd pfd{fd, POLLOUT, 0};
      const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) {
        error = ready == 0 ? ETIMEDOUT : errno;
        break;
      }
      socklen_t length = sizeof(error);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      break;
    }
  }
  ::close(fd);
  return error;
}

}  // namespace

Status ProbeEndpoint(const S3Repository& s3, std::chrono::milliseconds timeout) {
  std::string_view text = s3.endpoint;
  if (text.starts_with("https://")) text.remove_prefix(8);
  while (text.ends_with("/")) text.remove_suffix(1);
  std::string host(text);
  std::string port = "443";
  if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
    host = std::string(text.substr(0, colon));
    port = std::string(text.substr(colon + 1));
  }
  const std::string name = host + ":" + port;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &addresses); rc != 0)
    return IoError("the repository's endpoint " + name +
                   " cannot be resolved: " + ::gai_strerror(rc));
  const auto deadline = SteadyClock::now() + timeout;
  int error = 0;
  for (const addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    error = ConnectOnce(*a, deadline);
    if (error == 0) break;
  }
  ::freeaddrinfo(addresses);
  if (error == 0) return OkStatus();
  return IoError("the repository's endpoint " + name + " is unreachable: " + std::strerror(error));
}

}  // namespace kindling::pgbackup
