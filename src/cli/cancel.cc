#include "cli/cancel.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace kindling::cli {
namespace {

engine::CancelFlag g_cancel{false};
static_assert(engine::CancelFlag::is_always_lock_free, "the flag is set from a signal handler");

extern "C" void OnCancelSignal(int /*signo*/) {
  // Only async-signal-safe calls here: an atomic store, write(2) and _exit(2).
  if (g_cancel.exchange(true)) {
    constexpr char kMessage[] = "\nkindling: second signal, exiting now\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(130);
  }
  constexpr char kMessage[] = "\nkindling: cancelling (again to exit at once)\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
}

}  // namespace

engine::CancelFlag& InstallCancelHandlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = OnCancelSignal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: file and network I/O in flight finishes normally; the engine
  // notices the flag between chunks instead of handling EINTR everywhere.
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return g_cancel;
}

bool CancelRequested() { return g_cancel.load(); }

}  // namespace kindling::cli
