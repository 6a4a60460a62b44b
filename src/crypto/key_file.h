// Key files: 32-byte secrets the operator holds (the store key file, later the
// cluster master key). On disk: 64 hex characters and a newline, mode 0600; a
// file of exactly 32 raw bytes is also accepted.
#pragma once

#include <filesystem>

#include "common/result.h"
#include "crypto/aead.h"

namespace kindling::crypto {

// kNotFound when missing; kInvalidArgument when the content is not a key.
[[nodiscard]] Result<Key> LoadKeyFile(const std::filesystem::path& path);

// Creates a new random key file atomically with mode 0600. kAlreadyExists when
// the path exists (a key is never overwritten, also not by a racing creator:
// the file is moved into place with RENAME_NOREPLACE).
[[nodiscard]] Result<Key> CreateKeyFile(const std::filesystem::path& path);

}  // namespace kindling::crypto
