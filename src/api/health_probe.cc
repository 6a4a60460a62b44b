#include "api/health_probe.h"

#include <utility>

namespace kindling::api {

HealthProbe::HealthProbe(std::function<Status()> ping, std::chrono::milliseconds fresh, Clock clock)
    : ping_(std::move(ping)),
      fresh_(fresh),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

Status HealthProbe::Check() {
  std::shared_ptr<Ping> ping;
  bool joined = false;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_();
    if (last_ && now - last_->began < fresh_) return *last_->result.value();
    if (running_) {
      ping = running_;
      joined = true;
    } else {
      ping = std::make_shared<Ping>();
      ping->began = now;
      running_ = ping;
    }
  }
  if (joined) return ping->result.Await(mu_);
  Status result = std::unexpected(MakeError(ErrorKind::kInternal, "the ping threw"));
  auto land = [&] {
    std::lock_guard lock(mu_);
    ping->result.Set(result);
    last_ = ping;
    running_.reset();
  };
  try {
    result = ping_();
  } catch (...) {
    land();
    throw;
  }
  land();
  return result;
}

}  // namespace kindling::api
