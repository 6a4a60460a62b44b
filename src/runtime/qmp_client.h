// QmpClient: the QEMU Machine Protocol over a unix socket. Connect reads the
// greeting ({"QMP": {...}}) and leaves capabilities negotiation
// (qmp_capabilities) done, so commands can be sent at once. Each command
// carries an "id" and waits for the answer with that id; events that arrive
// meanwhile ({"event": ...}) are kept in order for TakeEvents / WaitEvent.
//
// Thread-safety: not thread-safe; one owner.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/result.h"

namespace kindling::vmm {

struct QmpEvent {
  std::string name{};     // "SHUTDOWN", "POWERDOWN", ...
  nlohmann::json data{};  // the event's "data", or null
};

class QmpClient {
 public:
  // Errors: kIo when the socket cannot be connected or closes, kTransient
  // when the greeting or the negotiation does not come within `timeout`,
  // kCorruption when the greeting is not QMP.
  [[nodiscard]] static Result<QmpClient> Connect(const std::filesystem::path& socket,
                                                 std::chrono::milliseconds timeout);

  // The greeting's "QMP" object (version, capabilities).
  const nlohmann::json& greeting() const { return greeting_; }

  // Runs `command` with `arguments` (an object, or null for none); its
  // "return" value. Errors: kFailedPrecondition when QEMU answers with an
  // error (its class and description in the message), kIo when the
  // connection breaks, kTransient on timeout.
  [[nodiscard]] Result<nlohmann::json> Execute(
      std::string_view command, const nlohmann::json& arguments = nullptr,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // The events received so far, oldest first, after reading whatever is
  // waiting on the socket without blocking; they are removed.
  std::vector<QmpEvent> TakeEvents();
  // Waits up to `timeout` for an event named `name`; earlier events stay
  // queued. kTransient on timeout, kIo when the connection closes first.
  [[nodiscard]] Result<QmpEvent> WaitEvent(std::string_view name,
                                           std::chrono::milliseconds timeout);

 private:
  explicit QmpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  // The next message, waiting until `deadline`.
  Result<nlohmann::json> ReadMessage(std::chrono::steady_clock::time_point deadline);
  // Reads what arrives on the socket before `deadline`: kTransient when
  // nothing did, kIo once the connection is closed.
  Status Fill(std::chrono::steady_clock::time_point deadline);
  Status Send(const nlohmann::json& message);
  void QueueEvent(const nlohmann::json& message);

  UniqueFd fd_;
  std::string buffer_;
  bool closed_ = false;
  nlohmann::json greeting_;
  std::deque<QmpEvent> events_;
  std::uint64_t next_id_ = 1;
};

}  // namespace kindling::vmm
