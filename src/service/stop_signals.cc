#include "service/stop_signals.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <thread>

namespace kindling::service {

StopSignals::StopSignals(bool handle_signals, const std::atomic<bool>* stop, std::string_view who)
    : handle_signals_(handle_signals), stop_(stop), who_(who) {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  if (handle_signals_) pthread_sigmask(SIG_BLOCK, &signals_, &previous_);
}

StopSignals::~StopSignals() {
  if (handle_signals_) pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

bool StopSignals::WaitForStop(std::chrono::milliseconds wait) {
  if (stopped_ || (stop_ != nullptr && stop_->load())) return stopped_ = true;
  if (!handle_signals_) {
    std::this_thread::sleep_for(wait);
    return stopped_ = stop_ != nullptr && stop_->load();
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(wait);
  const timespec timeout{static_cast<time_t>(seconds.count()),
                         static_cast<long>((wait - seconds).count() * 1'000'000)};
  const int sig = sigtimedwait(&signals_, nullptr, &timeout);
  if (sig == SIGINT || sig == SIGTERM) {
    spdlog::info("{}: signal {} received, stopping", who_, sig);
    stopped_ = true;
  }
  return stopped_ || (stop_ != nullptr && stop_->load());
}

}  // namespace kindling::service
