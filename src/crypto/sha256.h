// SHA-256 and HMAC-SHA-256 (OpenSSL). Instances are not thread-safe; the free
// functions are.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kindling::crypto {

using Digest = std::array<std::uint8_t, 32>;

std::string DigestHex(const Digest& digest);
std::string_view DigestBytes(const Digest& digest);

// Incremental SHA-256.
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
  // Returns the digest; the object must not be updated afterwards.
  Digest Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Digest Sha256Of(std::string_view data);
Digest HmacSha256(std::string_view key, std::string_view data);

}  // namespace kindling::crypto
