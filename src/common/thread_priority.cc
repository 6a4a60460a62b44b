#include "common/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace kindling {
namespace {

// linux/ioprio.h is not in every libc's headers; the ABI is stable.
constexpr int kIoprioWhoProcess = 1;
constexpr int kIoprioClassShift = 13;
constexpr int kIoprioClassBestEffort = 2;

int IoprioValue(int io_class, int level) { return (io_class << kIoprioClassShift) | level; }

std::unexpected<Error> Errno(const std::string& what, int err) {
  const ErrorKind kind =
      err == EPERM || err == EACCES ? ErrorKind::kPermissionDenied : ErrorKind::kIo;
  return MakeError(kind, what + ": " + std::strerror(err));
}

}  // namespace

Status SetThisThreadPriority(const ThreadPriority& priority) {
  if (priority.nice < -20 || priority.nice > 19) {
    return InvalidArgument("nice must be in -20..19, not " + std::to_string(priority.nice));
  }
  if (priority.io_level > 7) {
    return InvalidArgument("I/O priority level must be in 0..7, not " +
                           std::to_string(priority.io_level));
  }
  const auto tid = static_cast<id_t>(::gettid());
  if (::setpriority(PRIO_PROCESS, tid, priority.nice) != 0) {
    return Errno("setpriority", errno);
  }
  if (priority.io_level >= 0 &&
      ::syscall(SYS_ioprio_set, kIoprioWhoProcess, static_cast<int>(tid),
                IoprioValue(kIoprioClassBestEffort, priority.io_level)) != 0) {
    return Errno("ioprio_set", errno);
  }
  return OkStatus();
}

Result<ThreadPriority> GetThisThreadPriority() {
  const auto tid = static_cast<id_t>(::gettid());
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, tid);
  if (nice == -1 && errno != 0) return Errno("getpriority", errno);
  const long io = ::syscall(SYS_ioprio_get, kIoprioWhoProcess, static_cast<int>(tid));
  if (io < 0) return Errno("ioprio_get", errno);
  const int io_class = static_cast<int>(io) >> kIoprioClassShift;
  const int level = static_cast<int>(io) & ((1 << kIoprioClassShift) - 1);
  return ThreadPriority{.nice = nice, .io_level = io_class == kIoprioClassBestEffort ? level : -1};
}

}  // namespace kindling
