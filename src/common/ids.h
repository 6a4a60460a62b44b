// Identifiers: UUIDs for backups, volumes, servers and leases. The random
// bits come from OpenSSL's CSPRNG (RAND_bytes): unpredictable, and distinct
// across threads and processes.
#pragma once

#include <string>
#include <string_view>

namespace kindling {

// A random (version 4) UUID in canonical lower-case form.
std::string NewUuidV4();
// A time-ordered (version 7) UUID: sorts by creation time, so listing keys in
// lexical order lists backups oldest first.
std::string NewUuidV7();
// True for the canonical 8-4-4-4-12 hexadecimal form (any version).
bool IsUuid(std::string_view text);
// True when `id` is safe as one component of an object key: 1-128 characters
// of [A-Za-z0-9._-], not starting with '.'.
bool IsSafeKeyComponent(std::string_view id);

}  // namespace kindling
