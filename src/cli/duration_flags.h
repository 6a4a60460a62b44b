// Duration flags as operators type them: "90s", "15m", "1h", "7d" (a bare
// number is seconds), parsed by CLI11 into whole seconds.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <string>

namespace kindling::cli {

// The transform for add_option(...)->transform(DurationUnits()).
inline CLI::AsNumberWithUnit DurationUnits() {
  return CLI::AsNumberWithUnit(
      std::map<std::string, std::int64_t>{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}},
      CLI::AsNumberWithUnit::CASE_SENSITIVE, "DURATION");
}

}  // namespace kindling::cli
