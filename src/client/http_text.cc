#include "client/http_text.h"

namespace kindling::client {
namespace {

constexpr std::size_t kMaxQuotedBody = 200;

}  // namespace

Result<std::string> NormalizeBaseUrl(std::string url, std::string_view what) {
  while (url.ends_with('/')) url.pop_back();
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else {
    return InvalidArgument("the " + std::string(what) +
                           " URL must start with http:// or https://, got \"" +
                           PrintableExcerpt(url) + "\"");
  }
  if (rest.empty() || rest.front() == '/' || !IsHeaderSafe(rest)) {
    return InvalidArgument("the " + std::string(what) + " URL has no valid host: \"" +
                           PrintableExcerpt(url) + "\"");
  }
  return url;
}

bool IsHeaderSafe(std::string_view value) {
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return true;
}

std::string PrintableExcerpt(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxQuotedBody)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : ' ';
  }
  if (text.size() > kMaxQuotedBody) out += "...";
  return out;
}

}  // namespace kindling::client
