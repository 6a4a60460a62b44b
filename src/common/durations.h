// Durations as operators read them in reports and warnings.
#pragma once

#include <cstdio>
#include <string>

namespace kindling {

// An age or interval in whole seconds below two minutes ("42 s"), whole
// minutes below two hours ("17 min"), hours with a decimal beyond ("26.5 h").
inline std::string FormatAge(double seconds) {
  char buffer[64];
  if (seconds < 120)
    std::snprintf(buffer, sizeof buffer, "%.0f s", seconds);
  else if (seconds < 7200)
    std::snprintf(buffer, sizeof buffer, "%.0f min", seconds / 60);
  else
    std::snprintf(buffer, sizeof buffer, "%.1f h", seconds / 3600);
  return buffer;
}

}  // namespace kindling
