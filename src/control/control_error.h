// ControlError: a refusal or failure of a control-plane action, carrying the
// HTTP status and the reference system's error code ("volume_busy", ...), so
// api/ maps it to `{"error", "code"}` without knowing the rules behind it.
#pragma once

#include <expected>
#include <optional>
#include <string>
#include <utility>

#include "common/result.h"
#include "db/database.h"

namespace kindling::control {

inline constexpr char kCodeNotFound[] = "not_found";
inline constexpr char kCodeValidation[] = "validation_error";
inline constexpr char kCodeForbidden[] = "forbidden";
inline constexpr char kCodeUnauthorized[] = "unauthorized";
inline constexpr char kCodeVolumeAttached[] = "volume_attached";
inline constexpr char kCodeVolumeBusy[] = "volume_busy";
inline constexpr char kCodeVolumeUnavailable[] = "volume_unavailable";
inline constexpr char kCodeBackupStoreUnavailable[] = "backup_store_unavailable";
// A backup that references a chunk known to be missing or corrupt in its store.
inline constexpr char kCodeBackupDamaged[] = "backup_damaged";
inline constexpr char kCodeFailedPrecondition[] = "failed_precondition";
inline constexpr char kCodeUnavailable[] = "service_unavailable";
inline constexpr char kCodeInternal[] = "internal_error";

struct ControlError {
  int http_status = 500;
  std::string code = kCodeInternal;
  std::string message{};  // for the caller; never contains secrets
  // For the server's log only, never sent: the cause behind a generic 5xx
  // message (FromError keeps the lower layer's message here). May name
  // internals (SQL states, paths); lower layers keep secrets out of it and
  // api/ scrubs it again before logging.
  std::string internal{};
};

// [[nodiscard]] like Result<T> (common/result.h).
template <typename T>
using ControlResult = MustUse<T, ControlError>;

inline std::unexpected<ControlError> Refuse(int http_status, std::string code,
                                            std::string message) {
  return std::unexpected(ControlError{http_status, std::move(code), std::move(message)});
}

// Maps a lower-layer Error: kNotFound 404, kInvalidArgument 400,
// kFailedPrecondition 409 failed_precondition, kTransient 503,
// kPermissionDenied 403, anything else 500 (message kept generic there so
// internals do not leak to callers; the lower layer's message goes to
// `internal`, for the log).
ControlError FromError(const Error& error);

// Runs `fn(tx, refusal)` in one transaction. `fn` refuses a request by
// setting `refusal` and returning any error: the transaction rolls back (so
// nothing, not even the audit event, is written) and the refusal is returned.
// `fn` returns Result<T>. `options` as for db::Database::Transact.
template <typename T, typename F>
ControlResult<T> TransactChecked(db::Database& db, F&& fn, const db::TxOptions& options = {}) {
  std::optional<ControlError> refusal;
  auto result = db.Transact(
      [&](db::Tx& tx) -> Result<T> {
        refusal.reset();  // Transact may run fn again after a retryable failure
        return fn(tx, refusal);
      },
      options);
  if (refusal) return std::unexpected(std::move(*refusal));
  if (!result) return std::unexpected(FromError(result.error()));
  return std::move(*result);
}

// The error to return from a TransactChecked callback after setting `refusal`.
inline std::unexpected<Error> Refused() {
  return MakeError(ErrorKind::kCancelled, "request refused");
}

}  // namespace kindling::control
