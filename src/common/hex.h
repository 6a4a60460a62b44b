// Lower-case hexadecimal encoding of byte strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kindling {

std::string HexEncode(std::string_view bytes);
// Returns nullopt unless `hex` has an even length and only [0-9a-fA-F].
std::optional<std::string> HexDecode(std::string_view hex);

// RFC 3986 percent-encoding: every byte but the unreserved characters
// (A-Z a-z 0-9 - . _ ~), and '/' when `keep_slash`, becomes %XX (upper-case
// hex). This is also AWS SigV4's UriEncode.
std::string PercentEncode(std::string_view text, bool keep_slash = false);

}  // namespace kindling
