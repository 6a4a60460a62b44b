// AES-256-GCM authenticated encryption (OpenSSL) and secure random bytes.
//
// Sealed format: nonce (12 bytes, random) || ciphertext || tag (16 bytes).
// The functions are thread-safe. Any length is accepted: OpenSSL's EVP_*Update
// take int lengths, so data and associated data are fed in pieces of at most
// INT_MAX bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::crypto {

inline constexpr std::size_t kKeySize = 32;
inline constexpr std::size_t kNonceSize = 12;
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::size_t kSealOverhead = kNonceSize + kTagSize;

using Key = std::array<std::uint8_t, kKeySize>;

std::string_view KeyBytes(const Key& key);

// Fills `out` with cryptographically secure random bytes. Aborts if the system
// RNG fails, since continuing would produce predictable keys or nonces.
void RandomBytes(void* out, std::size_t size);
Key RandomKey();

// Appends nonce||ciphertext||tag of `plaintext` to `out`; `aad` is authenticated
// but not encrypted.
void SealAppend(const Key& key, std::string_view plaintext, std::string_view aad, std::string& out);

// Decrypts `sealed` (as produced by SealAppend) into `out` (replacing its
// content). kCorruption when authentication fails: wrong key, wrong aad or any
// altered byte.
[[nodiscard]] Status Open(const Key& key, std::string_view sealed, std::string_view aad,
                          std::string& out);

namespace internal {
// SealAppend / Open feeding OpenSSL at most `piece` bytes per call (the public
// functions use INT_MAX); tests use small pieces. REQUIRES: 0 < piece <= INT_MAX.
void SealAppendInPieces(const Key& key, std::string_view plaintext, std::string_view aad,
                        std::string& out, std::size_t piece);
[[nodiscard]] Status OpenInPieces(const Key& key, std::string_view sealed, std::string_view aad,
                                  std::string& out, std::size_t piece);
}  // namespace internal

}  // namespace kindling::crypto
