#include "cli/exit_codes.h"

#include <cstdio>
#include <string>

namespace kindling::cli {

int ExitCodeFor(const Error& error) {
  switch (error.kind()) {
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kAlreadyExists:
      return kExitUsage;
    case ErrorKind::kCorruption:
      return kExitIntegrity;
    case ErrorKind::kWrongKey:
      return kExitWrongKey;
    case ErrorKind::kCancelled:
      return kExitCancelled;
    case ErrorKind::kNotFound:
    case ErrorKind::kIo:
    case ErrorKind::kTransient:
    case ErrorKind::kPermissionDenied:
    case ErrorKind::kFailedPrecondition:
    case ErrorKind::kInternal:
      return kExitFailed;
  }
  return kExitFailed;
}

int ReportError(const Error& error) {
  // One line, whatever the message holds: scripts read the last line of stderr.
  std::string message = error.message();
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "kindling: error: %s\n", message.c_str());
  std::fflush(stderr);
  return ExitCodeFor(error);
}

}  // namespace kindling::cli
