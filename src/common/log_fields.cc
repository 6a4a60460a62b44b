#include "common/log_fields.h"

#include <nlohmann/json.hpp>

namespace kindling {
namespace {

bool IsBareChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '/' || c == '@' || c == '+' || c == '-';
}

bool IsBare(std::string_view value) {
  if (value.empty()) return false;
  for (char c : value)
    if (!IsBareChar(c)) return false;
  return true;
}

// The length of "key=" at the start of `text`, or 0.
std::size_t KeyLength(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || text[i] == '_')) ++i;
  return i > 0 && i < text.size() && text[i] == '=' ? i + 1 : 0;
}

}  // namespace

std::string LogField(std::string_view key, std::string_view value) {
  std::string out = " ";
  out += key;
  out += '=';
  if (IsBare(value)) {
    out += value;
  } else {
    // Invalid UTF-8 becomes U+FFFD rather than an exception.
    out += nlohmann::json(std::string(value))
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return out;
}

std::optional<LogFields> ParseLogFields(std::string_view line) {
  // The first token that starts a field: at the start or after a space.
  std::size_t start = std::string_view::npos;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if ((i == 0 || line[i - 1] == ' ') && KeyLength(line.substr(i)) > 0) {
      start = i;
      break;
    }
  }
  if (start == std::string_view::npos) return std::nullopt;
  LogFields out;
  out.message = std::string(line.substr(0, start));
  while (!out.message.empty() && out.message.back() == ' ') out.message.pop_back();
  std::size_t i = start;
  while (i < line.size()) {
    const std::size_t key_length = KeyLength(line.substr(i));
    if (key_length == 0) return std::nullopt;
    std::string key(line.substr(i, key_length - 1));
    i += key_length;
    std::string value;
    if (i < line.size() && line[i] == '"') {
      std::size_t end = i + 1;
      while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
      if (end >= line.size()) return std::nullopt;
      const auto parsed = nlohmann::json::parse(line.substr(i, end + 1 - i), nullptr, false);
      if (!parsed.is_string()) return std::nullopt;
      value = parsed.get<std::string>();
      i = end + 1;
    } else {
      const std::size_t end = std::min(line.find(' ', i), line.size());
      value = std::string(line.substr(i, end - i));
      if (!IsBare(value)) return std::nullopt;
      i = end;
    }
    out.fields.emplace_back(std::move(key), std::move(value));
    if (i < line.size()) {
      if (line[i] != ' ') return std::nullopt;
      ++i;
    }
  }
  return out;
}

}  // namespace kindling
