// SHA-256 and HMAC-SHA-256 (OpenSSL). Instances are not thread-safe; the free
// functions are.
//
// Hashing fails closed: OpenSSL's return values are checked, and a failure
// never yields a digest (an all-zero chunk id would deduplicate every chunk
// into one). The data path (chunk ids, chunk and image digests) uses the
// functions that return a Result, so a failure fails the backup or restore;
// the others (signatures, check values, API key hashes) abort instead, since
// their inputs are small and a failure means OpenSSL itself is broken.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::crypto {

using Digest = std::array<std::uint8_t, 32>;

std::string DigestHex(const Digest& digest);
std::string_view DigestBytes(const Digest& digest);

// Incremental SHA-256. A failed step (OpenSSL reports an error, or an Update
// after Finish) is remembered, and Finish then returns kInternal: checking
// once at the end keeps Update cheap on the hot path.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, std::size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Feeds `count` zero bytes (for holes) without a caller-side buffer.
  void UpdateZeros(std::uint64_t count);
  // The digest, or kInternal when any step failed. The object must not be
  // used afterwards (a second Finish or an Update is an error).
  [[nodiscard]] Result<Digest> Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool ok_ = true;
  bool finished_ = false;
};

// kInternal when OpenSSL fails (or a length exceeds what it accepts).
[[nodiscard]] Result<Digest> TrySha256Of(std::string_view data);
[[nodiscard]] Result<Digest> TryHmacSha256(std::string_view key, std::string_view data);

// As above, but abort with a message on failure (never a made-up digest).
Digest Sha256Of(std::string_view data);
Digest HmacSha256(std::string_view key, std::string_view data);

}  // namespace kindling::crypto
