#include "common/scrub.h"

#include <vector>

namespace kindling {

std::string ScrubSecrets(std::string_view text, std::initializer_list<std::string_view> secrets,
                         std::string_view mark) {
  std::vector<std::string_view> searched;
  for (std::string_view secret : secrets) {
    if (secret.size() >= kMinScrubbedSecretSize) searched.push_back(secret);
  }
  if (searched.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::size_t from = 0;
  while (from < text.size()) {
    std::size_t first = std::string_view::npos;
    std::size_t length = 0;
    for (std::string_view secret : searched) {
      const std::size_t at = text.find(secret, from);
      if (at < first || (at == first && at != std::string_view::npos && secret.size() > length)) {
        first = at;
        length = secret.size();
      }
    }
    if (first == std::string_view::npos) break;
    out.append(text.substr(from, first - from));
    out.append(mark);
    from = first + length;  // length >= kMinScrubbedSecretSize: always moves on
  }
  if (from < text.size()) out.append(text.substr(from));
  return out;
}

}  // namespace kindling
