// Secret: a string that must not outlive its use or leak by accident (API
// key plaintexts, S3 secret keys, key material). Its bytes are wiped
// (OPENSSL_cleanse) when it is destroyed, assigned over or moved from; it
// cannot be copied implicitly (Clone() says so), converted to a string, or
// streamed: the value is reachable only through Reveal(), which is easy to
// find in a review.
//
// Thread-safety: like std::string (const methods may run concurrently).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace kindling {

// Overwrites `size` bytes at `data` with zeros in a way the compiler keeps.
void WipeBytes(void* data, std::size_t size);
// Overwrites `text`'s bytes (its whole capacity) with zeros, then clears it.
void WipeString(std::string& text);

// Wipes a trivially copyable object (a crypto::Key array) when the scope
// that holds it ends, on every return path.
template <typename T>
class WipeOnExit {
 public:
  static_assert(std::is_trivially_copyable_v<T>);
  explicit WipeOnExit(T& object) : object_(object) {}
  ~WipeOnExit() { WipeBytes(&object_, sizeof(T)); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  T& object_;
};

class Secret {
 public:
  Secret() = default;
  // Takes `value`'s buffer; pass an rvalue so that no copy is left behind. A
  // short value lives in the string object itself (no heap buffer to take):
  // that copy is wiped.
  explicit Secret(std::string&& value) : value_(std::move(value)) { WipeString(value); }
  // Copies `value` (the caller keeps, and wipes, its own).
  static Secret FromView(std::string_view value) { return Secret(std::string(value)); }
  ~Secret() { WipeString(value_); }

  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { WipeString(other.value_); }
  Secret& operator=(Secret&& other) noexcept {
    if (this != &other) {
      WipeString(value_);
      value_ = std::move(other.value_);
      WipeString(other.value_);
    }
    return *this;
  }

  // An explicit copy, for the rare holder that needs its own.
  Secret Clone() const { return FromView(value_); }

  std::string_view Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  std::size_t size() const { return value_.size(); }

  friend bool operator==(const Secret& a, const Secret& b) { return a.value_ == b.value_; }

 private:
  std::string value_;
};

// SharedSecret: a Secret in a value that is copied whole (a configuration
// handed to several components). Copies share one immutable buffer, wiped
// when the last of them goes, so copying makes no new plaintext; like
// Secret, the value is reachable only through Reveal().
class SharedSecret {
 public:
  SharedSecret() = default;
  // Takes the Secret over (implicit: `config.key = Secret(...)` reads well).
  SharedSecret(Secret&& secret)  // NOLINT(google-explicit-constructor)
      : value_(secret.empty() ? nullptr : std::make_shared<const Secret>(std::move(secret))) {}

  std::string_view Reveal() const { return value_ ? value_->Reveal() : std::string_view(); }
  bool empty() const { return !value_ || value_->empty(); }

 private:
  std::shared_ptr<const Secret> value_;
};

}  // namespace kindling
