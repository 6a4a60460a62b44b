#include "control/control_error.h"

namespace kindling::control {

ControlError FromError(const Error& error) {
  switch (error.kind()) {
    case ErrorKind::kNotFound:
      return {404, kCodeNotFound, error.message()};
    case ErrorKind::kInvalidArgument:
    case ErrorKind::kAlreadyExists:
      return {400, kCodeValidation, error.message()};
    case ErrorKind::kPermissionDenied:
      return {403, kCodeForbidden, error.message()};
    case ErrorKind::kFailedPrecondition:
      return {409, kCodeFailedPrecondition, error.message()};
    case ErrorKind::kTransient:
      return {503, kCodeUnavailable, "temporarily unavailable, retry: " + error.message()};
    default:
      // Internal details (SQL states, paths) are for logs, not for callers.
      return {500, kCodeInternal, "internal error", error.message()};
  }
}

}  // namespace kindling::control
