// Key files: 32-byte secrets the operator holds (the store key file, later the
// cluster master key). On disk: 64 hex characters and a newline, mode 0600; a
// file of exactly 32 raw bytes is also accepted. The text read or written is
// wiped (Secret) once the key is out of it or on disk.
#pragma once

#include <filesystem>

#include "common/result.h"
#include "common/secret.h"
#include "crypto/aead.h"

namespace kindling::crypto {

// kNotFound when missing; kInvalidArgument when the content is not a key.
[[nodiscard]] Result<Key> LoadKeyFile(const std::filesystem::path& path);

// The content of a key file for `key`: 64 hex characters and a newline. A
// Secret, so the text is wiped when it goes.
Secret KeyFileText(const Key& key);

// Creates a new random key file atomically with mode 0600. kAlreadyExists when
// the path exists (a key is never overwritten, also not by a racing creator:
// the file is moved into place with RENAME_NOREPLACE).
[[nodiscard]] Result<Key> CreateKeyFile(const std::filesystem::path& path);

}  // namespace kindling::crypto
