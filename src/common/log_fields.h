// key=value fields in log messages ("request_id=ab12 status=500"): written by
// LogField, read back by ParseLogFields (the JSON log format turns them into
// JSON fields). A value that is not a plain token is a JSON string, so a
// quote, a newline or a control character can never end the line or forge
// another field.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kindling {

// " key=value": `value` bare when it is a non-empty run of
// [A-Za-z0-9._:/@+-], else a JSON string literal. REQUIRES: `key` is
// [a-z_]+.
std::string LogField(std::string_view key, std::string_view value);

struct LogFields {
  std::string message;                                      // the text before the first field
  std::vector<std::pair<std::string, std::string>> fields;  // values unquoted
};

// Splits "text key=value key=\"quoted\"": the fields start at the first
// space-separated token of the form [a-z_]+= and run to the end. nullopt
// when there are none or a token after them is not a field.
std::optional<LogFields> ParseLogFields(std::string_view line);

}  // namespace kindling
