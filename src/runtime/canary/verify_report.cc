#include "runtime/canary/verify_report.h"

#include <nlohmann/json.hpp>

namespace kindling::canary {

using nlohmann::json;

std::string VerifyReportJson(const VerifyReport& report) {
  // In the documented order, for people reading consoles.
  return nlohmann::ordered_json{
      {"records", report.records}, {"intact", report.intact}, {"damaged", report.damaged}}
      .dump();
}

Result<VerifyReport> ParseVerifyReportJson(std::string_view text) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Corruption("verify report is not a JSON object");
  const auto count = [&](const char* key) -> const json* {
    auto it = doc.find(key);
    return it != doc.end() && it->is_number_unsigned() ? &*it : nullptr;
  };
  const json* records = count("records");
  const json* intact = count("intact");
  auto damaged = doc.find("damaged");
  if (records == nullptr || intact == nullptr || damaged == doc.end() || !damaged->is_array())
    return Corruption("verify report lacks records, intact or damaged");
  VerifyReport report{.records = records->get<std::uint64_t>(),
                      .intact = intact->get<std::uint64_t>()};
  for (const json& id : *damaged) {
    if (!id.is_number_unsigned()) return Corruption("verify report: a damaged id is not a number");
    report.damaged.push_back(id.get<std::uint64_t>());
  }
  return report;
}

std::string VerifyConsoleLine(const VerifyReport& report) {
  return std::string(kVerifyConsolePrefix) + VerifyReportJson(report);
}

Result<VerifyReport> FindVerifyReport(std::string_view console_log) {
  std::optional<VerifyReport> last;
  while (!console_log.empty()) {
    const std::size_t end = console_log.find('\n');
    std::string_view line = console_log.substr(0, end);
    console_log.remove_prefix(end == std::string_view::npos ? console_log.size() : end + 1);
    const std::size_t at = line.find(kVerifyConsolePrefix);
    if (at == std::string_view::npos) continue;
    line.remove_prefix(at + kVerifyConsolePrefix.size());
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    // A kernel message printed into the middle of the line garbles it: such
    // a line is skipped rather than misread.
    if (auto report = ParseVerifyReportJson(line)) last = std::move(*report);
  }
  if (!last) return NotFound("no verify result in the console log");
  return *last;
}

}  // namespace kindling::canary
