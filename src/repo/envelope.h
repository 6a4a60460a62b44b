// The envelope every stored object is wrapped in: a self-describing 12-byte
// header, then AES-256-GCM over the (optionally zstd-compressed) payload.
//
//   offset size field
//   0      4    magic "KNDL"
//   4      1    object type (1 config, 2 chunk, 3 manifest)
//   5      1    format version (1)
//   6      1    codec (0 none, 1 zstd)
//   7      1    cipher (1 AES-256-GCM)
//   8      4    payload length before compression (little-endian u32)
//   12     ...  nonce(12) || ciphertext || tag(16)
//
// The header and a caller-given context (the chunk id, the manifest's key) are
// the AEAD's associated data: an object moved to another key, or a header
// byte flipped, fails authentication.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/aead.h"

namespace kindling::repo {

enum class ObjectType : std::uint8_t { kConfig = 1, kChunk = 2, kManifest = 3 };
enum class Codec : std::uint8_t { kNone = 0, kZstd = 1 };

inline constexpr std::size_t kEnvelopeHeaderSize = 12;
inline constexpr std::uint8_t kFormatVersion = 1;

struct EnvelopeHeader {
  ObjectType type = ObjectType::kChunk;
  std::uint8_t version = kFormatVersion;
  Codec codec = Codec::kNone;
  std::uint32_t plain_size = 0;
};

// Appends header || seal(key, body, header || context) to `out`.
void SealEnvelope(const crypto::Key& key, const EnvelopeHeader& header, std::string_view body,
                  std::string_view context, std::string& out);

// Parses only the header (no authentication). kCorruption on a bad magic,
// unknown version/codec/cipher or an unexpected type.
[[nodiscard]] Result<EnvelopeHeader> ParseEnvelopeHeader(std::string_view object,
                                                         ObjectType expected);

// Authenticates and decrypts; `body` receives the (still compressed) payload.
[[nodiscard]] Result<EnvelopeHeader> OpenEnvelope(const crypto::Key& key, std::string_view object,
                                                  ObjectType expected, std::string_view context,
                                                  std::string& body);

}  // namespace kindling::repo
