#include "cli/output.h"

#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "crypto/sha256.h"

namespace kindling::cli {

std::string FormatBytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text,
                value < 10.0 ? "%.2f %s" : (value < 100.0 ? "%.1f %s" : "%.0f %s"), value,
                kUnits[unit]);
  return text;
}

std::string FormatRate(double bytes_per_second) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB/s", bytes_per_second / 1e6);
  return text;
}

std::string FormatEta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto total = static_cast<std::uint64_t>(std::llround(seconds));
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, total / 3600,
                  (total / 60) % 60, total % 60);
  } else {
    std::snprintf(text, sizeof text, "%" PRIu64 ":%02" PRIu64, total / 60, total % 60);
  }
  return text;
}

std::string FormatDuration(std::uint64_t milliseconds) {
  char text[48];
  if (milliseconds < 1000) {
    std::snprintf(text, sizeof text, "%" PRIu64 " ms", milliseconds);
  } else if (milliseconds < 120'000) {
    std::snprintf(text, sizeof text, "%.2f s", static_cast<double>(milliseconds) / 1000.0);
  } else {
    const std::uint64_t seconds = milliseconds / 1000;
    std::snprintf(text, sizeof text, "%" PRIu64 " min %" PRIu64 " s", seconds / 60, seconds % 60);
  }
  return text;
}

std::string FormatUnixMs(std::uint64_t unix_ms) {
  const auto seconds = static_cast<time_t>(unix_ms / 1000);
  struct tm utc {};
  ::gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return text;
}

double RateOf(std::uint64_t bytes, std::uint64_t milliseconds) {
  if (milliseconds == 0) return 0.0;
  return static_cast<double>(bytes) * 1000.0 / static_cast<double>(milliseconds);
}

std::string FormatOffsets(const std::vector<std::uint64_t>& offsets, std::size_t shown) {
  std::string text;
  const std::size_t listed = std::min(shown, offsets.size());
  for (std::size_t i = 0; i < listed; ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(offsets[i]);
  }
  if (offsets.size() > listed) text += " and " + std::to_string(offsets.size() - listed) + " more";
  return text;
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void PrintJsonLine(const nlohmann::json& value) {
  std::fprintf(stdout, "%s\n", DumpJson(value).c_str());
  std::fflush(stdout);
}

namespace {

nlohmann::json StatsJson(const repo::BackupStats& stats) {
  return {
      {"chunks_data", stats.chunks_data},
      {"chunks_hole", stats.chunks_hole},
      {"chunks_uploaded", stats.chunks_uploaded},
      {"bytes_read", stats.bytes_read},
      {"bytes_data", stats.bytes_data},
      {"bytes_uploaded", stats.bytes_uploaded},
      {"bytes_referenced", stats.bytes_referenced},
      {"duration_ms", stats.duration_ms},
  };
}

}  // namespace

nlohmann::json BackupCreatedJson(const repo::Manifest& manifest) {
  nlohmann::json out = {
      {"backup_id", manifest.backup_id},
      {"volume_id", manifest.volume_id},
      {"image_sha256", crypto::DigestHex(manifest.image_digest)},
      {"image_size", manifest.image_size},
      {"chunk_size", manifest.chunk_size},
      {"chunks_total", manifest.chunks.size()},
      {"created_unix_ms", manifest.created_unix_ms},
      {"created", FormatUnixMs(manifest.created_unix_ms)},
  };
  out.update(StatsJson(manifest.stats));
  out["rate_bytes_per_second"] =
      std::round(RateOf(manifest.image_size, manifest.stats.duration_ms));
  return out;
}

nlohmann::json BackupInfoJson(const engine::BackupInfo& info) {
  nlohmann::json out = {
      {"backup_id", info.backup_id},
      {"volume_id", info.volume_id},
      {"image_sha256", info.image_digest_hex},
      {"image_size", info.image_size},
      {"chunk_size", info.chunk_size},
      {"chunks_total", repo::ChunkCount(info.image_size, info.chunk_size)},
      {"created_unix_ms", info.created_unix_ms},
      {"created", FormatUnixMs(info.created_unix_ms)},
  };
  out.update(StatsJson(info.stats));
  nlohmann::json damaged = nlohmann::json::array();
  for (const engine::DamagedChunkUse& chunk : info.damaged_chunks) {
    damaged.push_back({
        {"chunk_id", chunk.chunk_id_hex},
        {"problem", std::string(engine::DamageProblemName(chunk.problem))},
        {"offsets", chunk.offsets},
    });
  }
  out["status"] = info.damaged() ? "damaged" : "ok";
  out["damaged_chunks"] = std::move(damaged);
  return out;
}

nlohmann::json RestoreJson(const repo::Manifest& manifest, const engine::RestoreResult& result,
                           const std::string& destination, std::uint64_t duration_ms) {
  return {
      {"backup_id", manifest.backup_id},
      {"volume_id", manifest.volume_id},
      {"destination", destination},
      {"image_sha256", result.image_digest_hex},
      {"image_size", result.image_size},
      {"bytes_downloaded", result.bytes_downloaded},
      {"chunks_fetched", result.chunks_fetched},
      {"chunks_total", manifest.chunks.size()},
      {"duration_ms", duration_ms},
      {"rate_bytes_per_second", std::round(RateOf(result.image_size, duration_ms))},
  };
}

nlohmann::json VerifyJson(const repo::Manifest& manifest, const engine::VerifyReport& report,
                          std::uint64_t duration_ms) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& problem : report.problems) {
    problems.push_back({
        {"kind", std::string(engine::ProblemKindName(problem.kind))},
        {"chunk_id", problem.chunk_id_hex},
        {"key", problem.key},
        {"offset", problem.offset},
        {"message", problem.message},
    });
  }
  return {
      {"ok", report.ok()},
      {"backup_id", manifest.backup_id},
      {"volume_id", manifest.volume_id},
      {"chunks_referenced", report.chunks_referenced},
      {"chunks_checked", report.chunks_checked},
      {"bytes_checked", report.bytes_checked},
      {"image_digest_checked", report.image_digest_checked},
      {"image_digest_matches", report.image_digest_matches},
      {"duration_ms", duration_ms},
      {"problems", std::move(problems)},
  };
}

}  // namespace kindling::cli
