#include "crypto/key_file.h"

#include <sys/stat.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "common/files.h"
#include "common/hex.h"
#include "common/secret.h"

namespace kindling::crypto {

Result<Key> LoadKeyFile(const std::filesystem::path& path) {
  auto read = ReadFile(path);
  if (!read) {
    if (read.error().is_not_found()) return NotFound("key file not found: " + path.string());
    return std::unexpected(read.error());
  }
  // The file's text and its decoded bytes are key material: held as Secrets,
  // they are wiped on every return path.
  const Secret content(std::move(*read));
  Key key{};
  if (content.size() == kKeySize) {
    std::memcpy(key.data(), content.Reveal().data(), kKeySize);
    return key;
  }
  std::string_view text = content.Reveal();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.remove_suffix(1);
  std::optional<std::string> decoded = HexDecode(text);
  const Secret raw(decoded ? std::move(*decoded) : std::string());
  if (!decoded || raw.size() != kKeySize)
    return InvalidArgument("not a key file (want 64 hex characters): " + path.string());
  std::memcpy(key.data(), raw.Reveal().data(), kKeySize);
  return key;
}

Secret KeyFileText(const Key& key) {
  const Secret hex(HexEncode(KeyBytes(key)));
  std::string text;
  text.reserve(hex.size() + 1);  // one buffer: no stale copy
  text += hex.Reveal();
  text += '\n';
  return Secret(std::move(text));
}

Result<Key> CreateKeyFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    return MakeError(ErrorKind::kAlreadyExists, "key file already exists: " + path.string());
  Key key = RandomKey();
  // The check above is for the message; WriteFileNoReplace is what makes a
  // racing creator fail rather than replace the winner's key.
  auto written = WriteFileNoReplace(path, KeyFileText(key).Reveal(), 0600);
  if (!written && written.error().kind() == ErrorKind::kAlreadyExists)
    return MakeError(ErrorKind::kAlreadyExists, "key file already exists: " + path.string());
  KINDLING_RETURN_IF_ERROR(written);
  return key;
}

}  // namespace kindling::crypto
