// What commands print: human-readable figures and the --json documents.
//
// The JSON field names are an interface (scripts and the control plane parse
// them): add fields freely, never rename or drop one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/repository.h"
#include "engine/restore.h"
#include "engine/verify.h"
#include "repo/manifest.h"

namespace kindling::cli {

// "0 B", "512 B", "1.5 KiB", "3.25 GiB".
std::string FormatBytes(std::uint64_t bytes);
// Decimal megabytes per second: "312.4 MB/s".
std::string FormatRate(double bytes_per_second);
// "0:07", "12:34", "1:02:03".
std::string FormatEta(double seconds);
// "850 ms", "3.21 s", "2 min 5 s".
std::string FormatDuration(std::uint64_t milliseconds);
// "2024-05-01T12:00:00.123Z".
std::string FormatUnixMs(std::uint64_t unix_ms);
// Bytes per second of `bytes` over `milliseconds` (0 when no time elapsed).
double RateOf(std::uint64_t bytes, std::uint64_t milliseconds);
// The first `shown` offsets and how many more: "0, 65536 and 3 more".
std::string FormatOffsets(const std::vector<std::uint64_t>& offsets, std::size_t shown = 3);

// One-line JSON; invalid UTF-8 is replaced rather than thrown on.
std::string DumpJson(const nlohmann::json& value);
// Writes DumpJson(value) and a newline to stdout, then flushes.
void PrintJsonLine(const nlohmann::json& value);

// The `backup create` result document.
nlohmann::json BackupCreatedJson(const repo::Manifest& manifest);
// One entry of `backup list`, with "status": "ok" or "damaged" and
// "damaged_chunks": [{chunk_id, problem, offsets}] (engine/damage.h).
nlohmann::json BackupInfoJson(const engine::BackupInfo& info);
nlohmann::json RestoreJson(const repo::Manifest& manifest, const engine::RestoreResult& result,
                           const std::string& destination, std::uint64_t duration_ms);
nlohmann::json VerifyJson(const repo::Manifest& manifest, const engine::VerifyReport& report,
                          std::uint64_t duration_ms);

}  // namespace kindling::cli
