#include "runtime/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kindling::vmm {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

int MillisUntil(SteadyClock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace

Result<QmpClient> QmpClient::Connect(const std::filesystem::path& socket_path,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = socket_path.string();
  if (path.size() >= sizeof addr.sun_path)
    return InvalidArgument("QMP socket path too long for a unix socket: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return ErrnoError("connect to QMP socket " + path, errno);

  QmpClient client(std::move(fd));
  KINDLING_ASSIGN_OR_RETURN(json greeting, client.ReadMessage(deadline));
  auto qmp = greeting.find("QMP");
  if (qmp == greeting.end() || !qmp->is_object())
    return Corruption("not a QMP greeting: " + greeting.dump());
  client.greeting_ = *qmp;
  KINDLING_RETURN_IF_ERROR(client.Execute("qmp_capabilities", nullptr,
                                          std::chrono::milliseconds(MillisUntil(deadline))));
  return client;
}

Status QmpClient::Send(const json& message) {
  std::string line = message.dump();
  line += '\n';
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = ::send(fd_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("send to QMP", errno);
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  return OkStatus();
}

Status QmpClient::Fill(SteadyClock::time_point deadline) {
  if (closed_) return IoError("QMP connection closed");
  pollfd pfd{fd_.get(), POLLIN, 0};
  int ready = 0;
  do {
    ready = ::poll(&pfd, 1, MillisUntil(deadline));
  } while (ready < 0 && errno == EINTR);
  if (ready < 0) return ErrnoError("poll QMP socket", errno);
  if (ready == 0) return TransientError("QMP: no answer in time");
  char chunk[8192];
  const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return OkStatus();
  if (n < 0) return ErrnoError("read QMP socket", errno);
  if (n == 0) {
    closed_ = true;
    return IoError("QMP connection closed");
  }
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return OkStatus();
}

Result<json> QmpClient::ReadMessage(SteadyClock::time_point deadline) {
  for (;;) {
    const std::size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      const std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (message.is_discarded() || !message.is_object())
        return Corruption("QMP sent something that is not a JSON object: " + line);
      return message;
    }
    KINDLING_RETURN_IF_ERROR(Fill(deadline));
  }
}

void QmpClient::QueueEvent(const json& message) {
  QmpEvent event{.name = message.value("event", ""), .data = nullptr};
  if (auto data = message.find("data"); data != message.end()) event.data = *data;
  events_.push_back(std::move(event));
}

Result<json> QmpClient::Execute(std::string_view command, const json& arguments,
                                std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  const std::uint64_t id = next_id_++;
  json request = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  KINDLING_RETURN_IF_ERROR(Send(request));
  for (;;) {
    auto message = ReadMessage(deadline);
    if (!message) return std::unexpected(message.error().WithContext(std::string(command)));
    if (message->contains("event")) {
      QueueEvent(*message);
      continue;
    }
    auto got_id = message->find("id");
    if (got_id == message->end() || *got_id != id) continue;  // an answer to someone else
    if (auto ret = message->find("return"); ret != message->end()) return *ret;
    if (auto error = message->find("error"); error != message->end() && error->is_object())
      return FailedPrecondition("QMP " + std::string(command) + ": " +
                                error->value("class", std::string("Error")) + ": " +
                                error->value("desc", std::string("(no description)")));
    return Corruption("QMP answer without return or error: " + message->dump());
  }
}

std::vector<QmpEvent> QmpClient::TakeEvents() {
  // Drain without waiting: Fill with a deadline of now polls once.
  while (Fill(SteadyClock::now())) {
  }
  for (;;) {
    const std::size_t newline = buffer_.find('\n');
    if (newline == std::string::npos) break;
    auto message = ReadMessage(SteadyClock::now());
    if (message && message->contains("event")) QueueEvent(*message);
  }
  std::vector<QmpEvent> out(std::make_move_iterator(events_.begin()),
                            std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

Result<QmpEvent> QmpClient::WaitEvent(std::string_view name, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  auto take_queued = [&]() -> std::optional<QmpEvent> {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (it->name == name) {
        QmpEvent event = std::move(*it);
        events_.erase(it);
        return event;
      }
    }
    return std::nullopt;
  };
  if (auto event = take_queued()) return *event;
  for (;;) {
    KINDLING_ASSIGN_OR_RETURN(json message, ReadMessage(deadline));
    if (!message.contains("event")) continue;
    QueueEvent(message);
    if (auto event = take_queued()) return *event;
  }
}

}  // namespace kindling::vmm
