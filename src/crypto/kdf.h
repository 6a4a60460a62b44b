// Key derivation (HKDF-SHA-256, RFC 5869, through OpenSSL): one key per
// purpose from a root key (the cluster master key), so that a value sealed
// for one purpose never opens as another. Thread-safe.
#pragma once

#include <string_view>

#include "crypto/aead.h"

namespace kindling::crypto {

// HKDF-SHA-256(ikm = `root`, salt = none, info = "kindling " + `purpose`).
// REQUIRES: `purpose` names one use, e.g. "volume backup store secrets".
Key DeriveKey(const Key& root, std::string_view purpose);

}  // namespace kindling::crypto
