// StopSignals: how a long-running command (kindling serve, kindling dev)
// learns that it should stop. While alive it blocks SIGINT and SIGTERM in the
// calling thread, so threads started afterwards inherit the mask and only
// WaitForStop sees the signals; the destructor restores the previous mask.
// An embedding caller (tests) turns signal handling off and sets `stop`.
//
// Thread-safety: one owner thread, which created it.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <string_view>

namespace kindling::service {

class StopSignals {
 public:
  // `who` names the command in the log line about a received signal.
  StopSignals(bool handle_signals, const std::atomic<bool>* stop, std::string_view who);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Waits up to `wait` for SIGINT/SIGTERM; true when one arrived (now or
  // earlier) or *stop is set.
  bool WaitForStop(std::chrono::milliseconds wait);

 private:
  bool handle_signals_;
  const std::atomic<bool>* stop_;
  std::string_view who_;
  sigset_t signals_{};
  sigset_t previous_{};
  bool stopped_ = false;
};

}  // namespace kindling::service
