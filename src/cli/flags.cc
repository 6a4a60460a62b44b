#include "cli/flags.h"

#include <charconv>
#include <limits>

#include "common/ids.h"

namespace kindling::cli {

Result<std::uint64_t> ParseByteSize(std::string_view text) {
  const std::string original(text);
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data())
    return InvalidArgument("not a byte size: '" + original + "' (examples: 65536, 64K, 4MiB)");
  std::string_view suffix(end, static_cast<std::size_t>(text.data() + text.size() - end));
  if (suffix.ends_with("iB"))
    suffix.remove_suffix(2);
  else if (suffix.ends_with("B") && suffix.size() == 2)
    suffix.remove_suffix(1);
  int shift = 0;
  if (suffix.empty() || suffix == "B")
    shift = 0;
  else if (suffix == "K" || suffix == "k")
    shift = 10;
  else if (suffix == "M" || suffix == "m")
    shift = 20;
  else if (suffix == "G" || suffix == "g")
    shift = 30;
  else
    return InvalidArgument("not a byte size: '" + original + "' (examples: 65536, 64K, 4MiB)");
  if (shift > 0 && value > (std::numeric_limits<std::uint64_t>::max() >> shift))
    return InvalidArgument("byte size too large: '" + original + "'");
  return value << shift;
}

Result<std::uint32_t> ParseChunkSize(std::string_view text) {
  KINDLING_ASSIGN_OR_RETURN(std::uint64_t size, ParseByteSize(text));
  if (size < kMinChunkSize || size > kMaxChunkSize)
    return InvalidArgument("--chunk-size must be between 4KiB and 64MiB, got " + std::string(text));
  return static_cast<std::uint32_t>(size);
}

Result<ProgressMode> ParseProgressMode(std::string_view text) {
  if (text == "auto") return ProgressMode::kAuto;
  if (text == "bar") return ProgressMode::kBar;
  if (text == "json") return ProgressMode::kJson;
  if (text == "none") return ProgressMode::kNone;
  return InvalidArgument("--progress must be auto, bar, json or none, got '" + std::string(text) +
                         "'");
}

Status ValidateId(std::string_view what, std::string_view id) {
  if (IsSafeKeyComponent(id)) return OkStatus();
  return InvalidArgument(std::string(what) + " '" + std::string(id) +
                         "' is not a valid id: use 1-128 characters of [A-Za-z0-9._-], not "
                         "starting with '.'");
}

Status ValidateCommon(const CommonFlags& flags) {
  if (flags.threads < 0 || flags.threads > 1024)
    return InvalidArgument("--threads must be between 0 (automatic) and 1024");
  KINDLING_RETURN_IF_ERROR(ParseProgressMode(flags.progress));
  return OkStatus();
}

}  // namespace kindling::cli
