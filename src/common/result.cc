#include "common/result.h"

#include <cstring>
#include <string>

namespace kindling {

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
      return "invalid_argument";
    case ErrorKind::kNotFound:
      return "not_found";
    case ErrorKind::kAlreadyExists:
      return "already_exists";
    case ErrorKind::kCorruption:
      return "corruption";
    case ErrorKind::kWrongKey:
      return "wrong_key";
    case ErrorKind::kIo:
      return "io_error";
    case ErrorKind::kTransient:
      return "transient";
    case ErrorKind::kPermissionDenied:
      return "permission_denied";
    case ErrorKind::kFailedPrecondition:
      return "failed_precondition";
    case ErrorKind::kCancelled:
      return "cancelled";
    case ErrorKind::kInternal:
      return "internal";
  }
  return "unknown";
}

Error Error::WithContext(std::string_view context) const {
  std::string message(context);
  message += ": ";
  message += message_;
  return Error(kind_, std::move(message));
}

std::unexpected<Error> ErrnoError(std::string_view what, int err) {
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  // ENOSPC and friends are local I/O failures; they are not retried blindly.
  return IoError(std::move(message));
}

}  // namespace kindling
