// Lower-case hexadecimal encoding of byte strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kindling {

std::string HexEncode(std::string_view bytes);
// Returns nullopt unless `hex` has an even length and only [0-9a-fA-F].
std::optional<std::string> HexDecode(std::string_view hex);

}  // namespace kindling
