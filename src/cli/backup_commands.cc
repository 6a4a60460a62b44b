// `kindling backup create|list|restore|verify`.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

#include "cli/cancel.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/repository_access.h"
#include "crypto/sha256.h"
#include "engine/backup.h"
#include "engine/damage.h"
#include "engine/image_file.h"
#include "engine/restore.h"
#include "engine/verify.h"

namespace kindling::cli {
namespace {

namespace fs = std::filesystem;

Status CheckImage(const std::string& image) {
  std::error_code ec;
  const fs::file_status status = fs::status(image, ec);
  if (ec || !fs::exists(status)) {
    if (ec && ec != std::errc::no_such_file_or_directory)
      return IoError("cannot access image " + image + ": " + ec.message());
    return InvalidArgument("image not found: " + image);
  }
  if (!fs::is_regular_file(status)) return InvalidArgument("image is not a regular file: " + image);
  return OkStatus();
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

void PrintBackupHuman(const repo::Manifest& manifest, const std::string& image,
                      const std::vector<repo::ChunkId>& healed) {
  const repo::BackupStats& s = manifest.stats;
  std::printf("backup %s of volume %s committed\n", manifest.backup_id.c_str(),
              manifest.volume_id.c_str());
  std::printf("  image     %s: %s, digest %s\n", image.c_str(),
              FormatBytes(manifest.image_size).c_str(),
              crypto::DigestHex(manifest.image_digest).c_str());
  std::printf("  chunks    %zu of %s: %llu data, %llu holes/zeros, %llu uploaded\n",
              manifest.chunks.size(), FormatBytes(manifest.chunk_size).c_str(),
              static_cast<unsigned long long>(s.chunks_data),
              static_cast<unsigned long long>(s.chunks_hole),
              static_cast<unsigned long long>(s.chunks_uploaded));
  if (!healed.empty())
    std::printf(
        "  healed    %zu chunk(s) recorded damaged were stored again (which repairs the "
        "older backups that use them)\n",
        healed.size());
  std::printf("  bytes     read %s, uploaded %s, stored for this backup %s\n",
              FormatBytes(s.bytes_read).c_str(), FormatBytes(s.bytes_uploaded).c_str(),
              FormatBytes(s.bytes_referenced).c_str());
  std::printf("  time      %s (%s)\n", FormatDuration(s.duration_ms).c_str(),
              FormatRate(RateOf(manifest.image_size, s.duration_ms)).c_str());
}

}  // namespace

int RunBackupCreate(const BackupCreateFlags& flags, const CommonFlags& common) {
  engine::BackupOptions options;
  if (auto st = ValidateId("--volume-id", flags.volume_id); !st) return ReportError(st.error());
  if (!flags.backup_id.empty()) {
    if (auto st = ValidateId("--backup-id", flags.backup_id); !st) return ReportError(st.error());
  }
  if (!flags.chunk_size.empty()) {
    auto chunk_size = ParseChunkSize(flags.chunk_size);
    if (!chunk_size) return ReportError(chunk_size.error());
    options.chunk_size = *chunk_size;
  }
  if (auto st = ValidateCompressionLevel(flags.compression_level); !st)
    return ReportError(st.error());
  if (auto st = CheckImage(flags.image); !st) return ReportError(st.error());

  auto opened = OpenRepositoryFrom(flags.store);
  if (!opened) return FailCommand(opened.error());

  auto progress = MakeStderrProgress(common);
  options.volume_id = flags.volume_id;
  options.backup_id = flags.backup_id;
  options.image = flags.image;
  options.zstd_level = flags.compression_level;
  options.threads = common.threads;
  options.progress = progress->Callback();
  options.cancel = &InstallCancelHandlers();
  std::vector<repo::ChunkId> healed;
  options.healed = &healed;
  spdlog::info("backup of {} as volume {} to {}", flags.image, flags.volume_id,
               opened->store->Describe());
  auto manifest = engine::CreateBackup(*opened->repository, options);
  progress->Finish();
  if (!manifest) return FailCommand(manifest.error());

  if (common.json) {
    nlohmann::json out = BackupCreatedJson(*manifest);
    out["image"] = AbsolutePath(flags.image);
    out["store"] = opened->store->Describe();
    out["chunks_healed"] = healed.size();
    nlohmann::json healed_ids = nlohmann::json::array();
    for (const repo::ChunkId& id : healed) healed_ids.push_back(crypto::DigestHex(id));
    out["healed_chunk_ids"] = std::move(healed_ids);
    PrintJsonLine(out);
  } else {
    PrintBackupHuman(*manifest, flags.image, healed);
  }
  return kExitOk;
}

int RunBackupList(const BackupListFlags& flags, const CommonFlags& common) {
  if (!flags.volume_id.empty()) {
    if (auto st = ValidateId("--volume-id", flags.volume_id); !st) return ReportError(st.error());
  }
  auto opened = OpenRepositoryFrom(flags.store);
  if (!opened) return FailCommand(opened.error());
  auto backups = flags.volume_id.empty()
                     ? opened->repository->ListBackups()
                     : opened->repository->ListBackups(std::string_view(flags.volume_id));
  if (!backups) return FailCommand(backups.error());

  if (common.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& info : *backups) list.push_back(BackupInfoJson(info));
    PrintJsonLine({{"store", opened->store->Describe()}, {"backups", std::move(list)}});
    return kExitOk;
  }
  if (backups->empty()) {
    std::printf("no backups in %s\n", opened->store->Describe().c_str());
    return kExitOk;
  }
  std::printf("%-36s  %-20s  %-24s  %10s  %8s  %10s  %s\n", "BACKUP", "VOLUME", "CREATED (UTC)",
              "SIZE", "CHUNKS", "UPLOADED", "STATUS");
  std::size_t damaged = 0;
  for (const auto& info : *backups) {
    std::printf("%-36s  %-20s  %-24s  %10s  %8llu  %10s  %s\n", info.backup_id.c_str(),
                info.volume_id.c_str(), FormatUnixMs(info.created_unix_ms).c_str(),
                FormatBytes(info.image_size).c_str(),
                static_cast<unsigned long long>(repo::ChunkCount(info.image_size, info.chunk_size)),
                FormatBytes(info.stats.bytes_uploaded).c_str(), info.damaged() ? "damaged" : "ok");
    if (info.damaged()) ++damaged;
    for (const auto& chunk : info.damaged_chunks) {
      std::printf("    %s chunk %s at %s %s\n",
                  std::string(engine::DamageProblemName(chunk.problem)).c_str(),
                  chunk.chunk_id_hex.c_str(), chunk.offsets.size() == 1 ? "offset" : "offsets",
                  FormatOffsets(chunk.offsets).c_str());
    }
  }
  if (damaged > 0)
    std::printf(
        "%zu damaged backup(s): a backup of any image that still holds those chunks "
        "stores them again, which repairs them\n",
        damaged);
  return kExitOk;
}

int RunBackupRestore(const BackupRestoreFlags& flags, const CommonFlags& common) {
  if (auto st = ValidateId("--backup", flags.backup_id); !st) return ReportError(st.error());
  if (!flags.volume_id.empty()) {
    if (auto st = ValidateId("--volume-id", flags.volume_id); !st) return ReportError(st.error());
  }
  std::error_code ec;
  const fs::file_status destination_status = fs::symlink_status(flags.destination, ec);
  if (fs::exists(destination_status)) {
    if (!flags.force) {
      return ReportError(
          Error(ErrorKind::kAlreadyExists,
                "destination exists: " + flags.destination + " (pass --force to replace it)"));
    }
    if (fs::is_directory(destination_status)) {
      return ReportError(
          InvalidArgument("destination is a directory: " + flags.destination).error());
    }
  }

  auto opened = OpenRepositoryFrom(flags.store);
  if (!opened) return FailCommand(opened.error());
  auto manifest = FindManifest(*opened->repository, flags.backup_id, flags.volume_id);
  if (!manifest) return FailCommand(manifest.error());

  auto progress = MakeStderrProgress(common);
  engine::RestoreOptions options;
  options.destination = flags.destination;
  options.overwrite = flags.force;
  options.threads = common.threads;
  options.progress = progress->Callback();
  options.cancel = &InstallCancelHandlers();
  const auto start = std::chrono::steady_clock::now();
  auto restored = engine::RestoreBackup(*opened->repository, *manifest, options);
  progress->Finish();
  if (!restored) return FailCommand(restored.error());
  const std::uint64_t duration_ms = MillisecondsSince(start);

  if (common.json) {
    PrintJsonLine(RestoreJson(*manifest, *restored, AbsolutePath(flags.destination), duration_ms));
    return kExitOk;
  }
  std::printf("restored backup %s of volume %s to %s\n", manifest->backup_id.c_str(),
              manifest->volume_id.c_str(), flags.destination.c_str());
  std::printf("  image     %s, digest %s (verified)\n", FormatBytes(restored->image_size).c_str(),
              restored->image_digest_hex.c_str());
  std::printf("  fetched   %llu chunks, %s downloaded\n",
              static_cast<unsigned long long>(restored->chunks_fetched),
              FormatBytes(restored->bytes_downloaded).c_str());
  std::printf("  time      %s (%s)\n", FormatDuration(duration_ms).c_str(),
              FormatRate(RateOf(restored->image_size, duration_ms)).c_str());
  return kExitOk;
}

int RunBackupVerify(const BackupVerifyFlags& flags, const CommonFlags& common) {
  if (auto st = ValidateId("--backup", flags.backup_id); !st) return ReportError(st.error());
  if (!flags.volume_id.empty()) {
    if (auto st = ValidateId("--volume-id", flags.volume_id); !st) return ReportError(st.error());
  }
  if (!(flags.sample > 0.0 && flags.sample <= 1.0)) {
    return ReportError(
        InvalidArgument("--sample must be in (0, 1], got " + std::to_string(flags.sample)).error());
  }
  auto opened = OpenRepositoryFrom(flags.store);
  if (!opened) return FailCommand(opened.error());
  auto manifest = FindManifest(*opened->repository, flags.backup_id, flags.volume_id);
  if (!manifest) return FailCommand(manifest.error());

  auto progress = MakeStderrProgress(common);
  engine::VerifyOptions options;
  options.sample_fraction = flags.sample;
  options.seed = flags.seed;
  options.threads = common.threads;
  options.progress = progress->Callback();
  options.cancel = &InstallCancelHandlers();
  const auto start = std::chrono::steady_clock::now();
  auto report = engine::VerifyBackup(*opened->repository, *manifest, options);
  progress->Finish();
  if (!report) return FailCommand(report.error());
  const std::uint64_t duration_ms = MillisecondsSince(start);

  if (common.json) {
    PrintJsonLine(VerifyJson(*manifest, *report, duration_ms));
  } else {
    std::printf("backup %s of volume %s: %llu of %llu chunks checked (%s) in %s: %s\n",
                manifest->backup_id.c_str(), manifest->volume_id.c_str(),
                static_cast<unsigned long long>(report->chunks_checked),
                static_cast<unsigned long long>(report->chunks_referenced),
                FormatBytes(report->bytes_checked).c_str(), FormatDuration(duration_ms).c_str(),
                report->ok() ? "OK" : "PROBLEMS FOUND");
    for (const auto& problem : report->problems) {
      std::printf("  %s chunk %s at offset %llu (%s): %s\n",
                  std::string(engine::ProblemKindName(problem.kind)).c_str(),
                  problem.chunk_id_hex.c_str(), static_cast<unsigned long long>(problem.offset),
                  problem.key.c_str(), problem.message.c_str());
    }
    const bool recorded = std::any_of(report->problems.begin(), report->problems.end(),
                                      [](const engine::ChunkProblem& p) {
                                        return p.kind != engine::ChunkProblem::Kind::kUnreadable;
                                      });
    if (recorded)
      std::printf(
          "  missing and corrupt chunks are recorded in the store: `backup list` marks "
          "the backups that use them, and the next backup of an image that holds them "
          "stores them again\n");
    if (report->image_digest_checked)
      std::printf("  image digest %s\n",
                  report->image_digest_matches
                      ? "recomputed from the chunks: matches"
                      : "recomputed from the chunks: DOES NOT MATCH the manifest");
  }
  if (report->image_digest_checked && !report->image_digest_matches) {
    return ReportError(Error(ErrorKind::kCorruption,
                             "backup " + manifest->backup_id +
                                 ": the image digest recomputed from its chunks does not match "
                                 "its manifest"));
  }
  if (!report->ok()) {
    return ReportError(Error(ErrorKind::kCorruption,
                             "verify found " + std::to_string(report->problems.size()) +
                                 " damaged or missing chunk(s) in backup " + manifest->backup_id));
  }
  return kExitOk;
}

}  // namespace kindling::cli

namespace kindling::cli {

int RunImageDigest(const ImageDigestFlags& flags, const CommonFlags& common) {
  std::uint32_t chunk_size = 4u << 20;
  if (!flags.chunk_size.empty()) {
    auto parsed = ParseChunkSize(flags.chunk_size);
    if (!parsed) return ReportError(parsed.error());
    chunk_size = *parsed;
  }
  const auto start = std::chrono::steady_clock::now();
  auto digest = engine::DigestImageFile(flags.image, chunk_size, common.threads);
  if (!digest) return FailCommand(digest.error());
  const std::string hex = crypto::DigestHex(*digest);
  if (common.json) {
    PrintJsonLine({{"image", flags.image},
                   {"chunk_size", chunk_size},
                   {"image_sha256", hex},
                   {"duration_ms", MillisecondsSince(start)}});
  } else {
    std::printf("%s  %s\n", hex.c_str(), flags.image.c_str());
  }
  return kExitOk;
}

}  // namespace kindling::cli
