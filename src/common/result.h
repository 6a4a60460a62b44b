// Error and Result<T>: how the data path reports failure without exceptions.
//
// An Error carries a kind that callers branch on (retry logic reads retryable(),
// never message text) and a human-readable message that never contains secrets.
//
// Result<T> and Status (= Result<void>) are std::expected<T, Error> under a
// [[nodiscard]] class, so the compiler rejects a call whose result is dropped,
// including calls through virtual functions and std::function (g++ ignores
// [[nodiscard]] on virtual declarations, never on the returned type). A result
// that is right to ignore (best-effort cleanup) goes through IgnoreError with
// the reason.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace kindling {

enum class ErrorKind : std::uint8_t {
  kInvalidArgument,     // the caller's input is wrong; retrying cannot help
  kNotFound,            // the object, file or row does not exist
  kAlreadyExists,       // create-only target exists
  kCorruption,          // data failed authentication, a checksum or parsing
  kWrongKey,            // the key file does not open this store
  kIo,                  // local I/O failed (disk full, permission, ...)
  kTransient,           // network/server hiccup: safe to retry
  kPermissionDenied,    // credentials rejected
  kFailedPrecondition,  // valid request refused in the current state (busy, not configured)
  kCancelled,           // the caller asked to stop
  kInternal,            // a bug or an unexpected answer
};

std::string_view ErrorKindName(ErrorKind kind);

class [[nodiscard]] Error {
 public:
  Error(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  bool retryable() const { return kind_ == ErrorKind::kTransient; }
  bool is_not_found() const { return kind_ == ErrorKind::kNotFound; }
  bool is_corruption() const { return kind_ == ErrorKind::kCorruption; }

  // Returns a copy whose message is "context: message"; the kind is kept.
  Error WithContext(std::string_view context) const;

 private:
  ErrorKind kind_;
  std::string message_;
};

// std::expected<T, E> that must not be dropped. Everything std::expected
// offers works unchanged (construction from a value or std::unexpected,
// conversion to and from std::expected, comparison with a value); ControlResult (control/)
// uses it with its own error type.
template <typename T, typename E>
class [[nodiscard]] MustUse : public std::expected<T, E> {
 public:
  using Base = std::expected<T, E>;
  using Base::Base;
  using Base::operator=;

  constexpr MustUse() = default;
  // Implicit, like the conversion the other way: code that builds a plain
  // std::expected can return it as a MustUse.
  constexpr MustUse(const Base& base) : Base(base) {}
  constexpr MustUse(Base&& base) : Base(std::move(base)) {}
};

template <typename T>
using Result = MustUse<T, Error>;
using Status = Result<void>;

// Drops a result on purpose. `why` says why ignoring its error is right
// there (best-effort cleanup whose failure changes nothing); it documents
// the call site and is not used otherwise.
template <typename T, typename E>
constexpr void IgnoreError(const MustUse<T, E>& /*result*/, std::string_view /*why*/) {}

inline std::unexpected<Error> MakeError(ErrorKind kind, std::string message) {
  return std::unexpected<Error>(Error(kind, std::move(message)));
}
inline std::unexpected<Error> InvalidArgument(std::string m) {
  return MakeError(ErrorKind::kInvalidArgument, std::move(m));
}
inline std::unexpected<Error> NotFound(std::string m) {
  return MakeError(ErrorKind::kNotFound, std::move(m));
}
inline std::unexpected<Error> Corruption(std::string m) {
  return MakeError(ErrorKind::kCorruption, std::move(m));
}
inline std::unexpected<Error> IoError(std::string m) {
  return MakeError(ErrorKind::kIo, std::move(m));
}
inline std::unexpected<Error> TransientError(std::string m) {
  return MakeError(ErrorKind::kTransient, std::move(m));
}
inline std::unexpected<Error> InternalError(std::string m) {
  return MakeError(ErrorKind::kInternal, std::move(m));
}
inline std::unexpected<Error> FailedPrecondition(std::string m) {
  return MakeError(ErrorKind::kFailedPrecondition, std::move(m));
}
inline std::unexpected<Error> Cancelled(std::string m = "cancelled") {
  return MakeError(ErrorKind::kCancelled, std::move(m));
}
// An I/O error built from errno, e.g. ErrnoError("open /x", errno).
std::unexpected<Error> ErrnoError(std::string_view what, int err);

inline Status OkStatus() { return {}; }

}  // namespace kindling

#define KINDLING_CONCAT_INNER(a, b) a##b
#define KINDLING_CONCAT(a, b) KINDLING_CONCAT_INNER(a, b)

// Returns the error of a Status/Result expression from the enclosing function.
#define KINDLING_RETURN_IF_ERROR(expr)                                       \
  do {                                                                       \
    auto&& kindling_status_ = (expr);                                        \
    if (!kindling_status_) return std::unexpected(kindling_status_.error()); \
  } while (0)

// Declares/assigns `lhs` from a Result expression, or returns its error.
#define KINDLING_ASSIGN_OR_RETURN(lhs, expr) \
  KINDLING_ASSIGN_OR_RETURN_IMPL(KINDLING_CONCAT(kindling_result_, __LINE__), lhs, expr)
#define KINDLING_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)      \
  auto tmp = (expr);                                        \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  lhs = std::move(*tmp)
