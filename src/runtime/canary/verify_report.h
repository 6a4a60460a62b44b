// VerifyReport: what the canary found when it read its records back, as the
// HTTP answer of GET /records/verify and, in the one-shot verify mode, as a
// console line the host picks out of the guest's serial log:
//   kindling-canary-verify: {"records":3,"intact":3,"damaged":[]}
// The JSON shape is a contract with the host: keep it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kindling::canary {

struct VerifyReport {
  std::uint64_t records = 0;             // record files found
  std::uint64_t intact = 0;              // of them, readable with a matching checksum
  std::vector<std::uint64_t> damaged{};  // ids of the others, ascending

  bool operator==(const VerifyReport&) const = default;
};

// The prefix of the console line the verify mode prints.
inline constexpr std::string_view kVerifyConsolePrefix = "kindling-canary-verify: ";

// {"records":N,"intact":N,"damaged":[...]}
std::string VerifyReportJson(const VerifyReport& report);
// Parses that JSON; kCorruption when it does not have that shape.
[[nodiscard]] Result<VerifyReport> ParseVerifyReportJson(std::string_view json);

// kVerifyConsolePrefix + JSON.
std::string VerifyConsoleLine(const VerifyReport& report);
// The report of the last verify line in a console log (lines may end in
// "\r\n" and be mixed with kernel messages). kNotFound when there is none.
[[nodiscard]] Result<VerifyReport> FindVerifyReport(std::string_view console_log);

}  // namespace kindling::canary
