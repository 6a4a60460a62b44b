#include "crypto/key_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "common/files.h"
#include "common/hex.h"

namespace kindling::crypto {

Result<Key> LoadKeyFile(const std::filesystem::path& path) {
  auto content = ReadFile(path);
  if (!content) {
    if (content.error().is_not_found()) return NotFound("key file not found: " + path.string());
    return std::unexpected(content.error());
  }
  std::string raw;
  if (content->size() == kKeySize) {
    raw = *content;
  } else {
    std::string text = *content;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
      text.pop_back();
    auto decoded = HexDecode(text);
    if (!decoded || decoded->size() != kKeySize)
      return InvalidArgument("not a key file (want 64 hex characters): " + path.string());
    raw = *decoded;
  }
  Key key{};
  std::memcpy(key.data(), raw.data(), kKeySize);
  return key;
}

Result<Key> CreateKeyFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    return MakeError(ErrorKind::kAlreadyExists, "key file already exists: " + path.string());
  Key key = RandomKey();
  std::string text = HexEncode(KeyBytes(key)) + "\n";
  // The check above is for the message; WriteFileNoReplace is what makes a
  // racing creator fail rather than replace the winner's key.
  auto written = WriteFileNoReplace(path, text, 0600);
  std::fill(text.begin(), text.end(), '\0');
  if (!written && written.error().kind() == ErrorKind::kAlreadyExists)
    return MakeError(ErrorKind::kAlreadyExists, "key file already exists: " + path.string());
  KINDLING_RETURN_IF_ERROR(written);
  return key;
}

}  // namespace kindling::crypto
