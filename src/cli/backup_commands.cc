// `kindling backup create|list|restore|verify|forget|delete`.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
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
#include "engine/retention.h"
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
  const auto snapshot = engine::ParseUse(flags.snapshot);
  const auto changed_blocks = engine::ParseUse(flags.changed_blocks);
  if (!snapshot || !changed_blocks)
    return ReportError(
        InvalidArgument("--snapshot and --changed-blocks take auto, on or off").error());
  options.snapshot = *snapshot;
  options.changed_blocks = *changed_blocks;
  if (options.snapshot == engine::Use::kOff) {
    if (options.changed_blocks == engine::Use::kOn)
      return ReportError(
          InvalidArgument("--changed-blocks on needs a snapshot (--snapshot auto or on)").error());
    options.changed_blocks = engine::Use::kOff;
  }
  options.reread_skipped = flags.reread_skipped;
  engine::BackupReport report;
  options.report = &report;

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
    out["read_path"] = report.read_path;
    out["snapshot"] = report.snapshot.empty() ? nlohmann::json(nullptr)
                                              : nlohmann::json(report.snapshot.string());
    out["fallback"] =
        report.fallback.empty() ? nlohmann::json(nullptr) : nlohmann::json(report.fallback);
    out["bytes_skipped"] = report.bytes_skipped;
    out["chunks_skipped"] = report.chunks_skipped;
    if (flags.reread_skipped) out["bytes_reread"] = report.bytes_reread;
    out["snapshot_ms"] = report.snapshot_ms;
    out["diff_ms"] = report.diff_ms;
    PrintJsonLine(out);
  } else {
    PrintBackupHuman(*manifest, flags.image, healed);
    std::printf("  read      %s%s%s: skipped %s unchanged\n", report.read_path.c_str(),
                report.snapshot.empty() ? "" : ", from snapshot ", report.snapshot.string().c_str(),
                FormatBytes(report.bytes_skipped).c_str());
    if (!report.fallback.empty()) std::printf("  note      %s\n", report.fallback.c_str());
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

namespace {

// The policy of the --keep-* flags; none negative, and at least one set.
Result<engine::RetentionPolicy> RetentionPolicyFrom(const BackupForgetFlags& flags) {
  const std::pair<const char*, int> counts[] = {
      {"--keep-last", flags.keep_last},       {"--keep-hourly", flags.keep_hourly},
      {"--keep-daily", flags.keep_daily},     {"--keep-weekly", flags.keep_weekly},
      {"--keep-monthly", flags.keep_monthly}, {"--keep-yearly", flags.keep_yearly},
  };
  for (const auto& [flag, count] : counts) {
    if (count < 0)
      return InvalidArgument(std::string(flag) + " must be 0 or more, got " +
                             std::to_string(count));
  }
  engine::RetentionPolicy policy;
  policy.keep_last = flags.keep_last;
  policy.keep_hourly = flags.keep_hourly;
  policy.keep_daily = flags.keep_daily;
  policy.keep_weekly = flags.keep_weekly;
  policy.keep_monthly = flags.keep_monthly;
  policy.keep_yearly = flags.keep_yearly;
  if (policy.empty())
    return InvalidArgument(
        "give at least one --keep-* rule (--keep-last, --keep-hourly, --keep-daily, "
        "--keep-weekly, --keep-monthly, --keep-yearly): forget deletes every backup no rule "
        "keeps");
  return policy;
}

// "--keep-last 2 --keep-daily 7": the rules in force.
std::string DescribePolicy(const engine::RetentionPolicy& policy) {
  const std::pair<const char*, int> counts[] = {
      {"--keep-last", policy.keep_last},       {"--keep-hourly", policy.keep_hourly},
      {"--keep-daily", policy.keep_daily},     {"--keep-weekly", policy.keep_weekly},
      {"--keep-monthly", policy.keep_monthly}, {"--keep-yearly", policy.keep_yearly},
  };
  std::string text;
  for (const auto& [flag, count] : counts) {
    if (count == 0) continue;
    if (!text.empty()) text += ' ';
    text += std::string(flag) + ' ' + std::to_string(count);
  }
  return text;
}

// One backup of `backup forget` and what became of it.
struct ForgetEntry {
  engine::RetentionDecision decision{};
  bool deleted = false;  // the manifest is gone (never in a dry run)
  std::string error{};   // non-empty: a dropped backup whose manifest is still there
};

nlohmann::json ForgetEntryJson(const ForgetEntry& entry) {
  nlohmann::json out = {
      {"backup_id", entry.decision.id},
      {"created_at", FormatUnixMs(static_cast<std::uint64_t>(entry.decision.created_unix_ms))},
      {"created_unix_ms", entry.decision.created_unix_ms},
      {"reasons", entry.decision.reasons},
  };
  if (!entry.error.empty()) out["error"] = entry.error;
  return out;
}

std::string JoinReasons(const std::vector<std::string>& reasons) {
  std::string text;
  for (const std::string& reason : reasons) {
    if (!text.empty()) text += ", ";
    text += reason;
  }
  return text.empty() ? "-" : text;
}

void PrintForgetHuman(const std::vector<ForgetEntry>& entries, const BackupForgetFlags& flags,
                      const engine::RetentionPolicy& policy, const std::string& store) {
  std::printf("volume %s in %s: %zu backup(s), policy %s%s\n", flags.volume_id.c_str(),
              store.c_str(), entries.size(), DescribePolicy(policy).c_str(),
              flags.dry_run ? " (dry run, nothing deleted)" : "");
  if (entries.empty()) return;
  std::printf("%-36s  %-24s  %-10s  %s\n", "BACKUP", "CREATED (UTC)", "ACTION", "REASONS");
  std::size_t kept = 0;
  std::size_t dropped = 0;
  std::size_t failed = 0;
  for (const ForgetEntry& entry : entries) {
    const char* action = "keep";
    if (entry.decision.keep) {
      ++kept;
    } else if (!entry.error.empty()) {
      action = "FAILED";
      ++failed;
    } else {
      action = flags.dry_run ? "would drop" : "drop";
      ++dropped;
    }
    std::printf(
        "%-36s  %-24s  %-10s  %s\n", entry.decision.id.c_str(),
        FormatUnixMs(static_cast<std::uint64_t>(entry.decision.created_unix_ms)).c_str(), action,
        entry.error.empty() ? JoinReasons(entry.decision.reasons).c_str() : entry.error.c_str());
  }
  if (flags.dry_run) {
    std::printf("dry run: would keep %zu, drop %zu; nothing deleted\n", kept, dropped);
  } else if (failed > 0) {
    std::printf(
        "kept %zu, dropped %zu, %zu could not be dropped; run `kindling store gc` to free "
        "the chunks of the dropped ones\n",
        kept, dropped, failed);
  } else if (dropped > 0) {
    std::printf("kept %zu, dropped %zu; run `kindling store gc` to free their chunks\n", kept,
                dropped);
  } else {
    std::printf("kept %zu, dropped 0; nothing to delete\n", kept);
  }
}

}  // namespace

int RunBackupForget(const BackupForgetFlags& flags, const CommonFlags& common) {
  if (auto st = ValidateId("--volume-id", flags.volume_id); !st) return ReportError(st.error());
  auto policy = RetentionPolicyFrom(flags);
  if (!policy) return ReportError(policy.error());

  auto opened = OpenRepositoryFrom(flags.store);
  if (!opened) return FailCommand(opened.error());
  const std::string store = opened->store->Describe();
  auto backups = opened->repository->ListBackups(std::string_view(flags.volume_id));
  if (!backups) return FailCommand(backups.error());

  std::vector<engine::RetentionItem> items;
  items.reserve(backups->size());
  for (const engine::BackupInfo& info : *backups) {
    items.push_back(
        {.id = info.backup_id, .created_unix_ms = static_cast<std::int64_t>(info.created_unix_ms)});
  }
  std::vector<ForgetEntry> entries;
  for (engine::RetentionDecision& decision : engine::ApplyRetention(std::move(items), *policy))
    entries.push_back({.decision = std::move(decision)});
  spdlog::info("forget in volume {} of {} ({}){}", flags.volume_id, store, DescribePolicy(*policy),
               flags.dry_run ? " (dry run)" : "");

  // Oldest first, so that an interrupted run has dropped the oldest.
  std::size_t failures = 0;
  std::optional<Error> first_failure;
  if (!flags.dry_run) {
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      if (it->decision.keep) continue;
      if (CancelRequested()) {
        it->error = "not deleted: cancelled";
        ++failures;
        continue;
      }
      auto deleted = opened->repository->DeleteBackup(flags.volume_id, it->decision.id);
      if (deleted) {
        it->deleted = true;
        spdlog::info("deleted the manifest of backup {}", it->decision.id);
        continue;
      }
      const Error error = deleted.error().WithContext(
          "delete the manifest of backup " + it->decision.id + " of volume " + flags.volume_id);
      std::fprintf(stderr, "kindling: error: %s\n", error.message().c_str());
      std::fflush(stderr);
      it->error = error.message();
      ++failures;
      if (!first_failure) first_failure = error;
    }
  }

  if (common.json) {
    nlohmann::json kept = nlohmann::json::array();
    nlohmann::json dropped = nlohmann::json::array();
    nlohmann::json failed = nlohmann::json::array();
    for (const ForgetEntry& entry : entries) {
      if (entry.decision.keep)
        kept.push_back(ForgetEntryJson(entry));
      else if (!entry.error.empty())
        failed.push_back(ForgetEntryJson(entry));
      else
        dropped.push_back(ForgetEntryJson(entry));
    }
    PrintJsonLine({{"store", store},
                   {"volume_id", flags.volume_id},
                   {"dry_run", flags.dry_run},
                   {"policy",
                    {{"keep_last", policy->keep_last},
                     {"keep_hourly", policy->keep_hourly},
                     {"keep_daily", policy->keep_daily},
                     {"keep_weekly", policy->keep_weekly},
                     {"keep_monthly", policy->keep_monthly},
                     {"keep_yearly", policy->keep_yearly}}},
                   {"kept", std::move(kept)},
                   {"dropped", std::move(dropped)},
                   {"failed", std::move(failed)}});
  } else {
    PrintForgetHuman(entries, flags, *policy, store);
  }
  if (failures == 0) return kExitOk;
  const std::string summary = "could not delete " + std::to_string(failures) +
                              " of the manifests forget dropped in volume " + flags.volume_id;
  if (!first_failure) return FailCommand(Error(ErrorKind::kCancelled, "cancelled: " + summary));
  return FailCommand(
      Error(first_failure->kind(), summary + " (the first: " + first_failure->message() + ")"));
}

int RunBackupDelete(const BackupDeleteFlags& flags, const CommonFlags& common) {
  if (auto st = ValidateId("--backup", flags.backup_id); !st) return ReportError(st.error());
  if (!flags.volume_id.empty()) {
    if (auto st = ValidateId("--volume-id", flags.volume_id); !st) return ReportError(st.error());
  }
  auto opened = OpenRepositoryFrom(flags.store);
  if (!opened) return FailCommand(opened.error());
  const std::string store = opened->store->Describe();
  auto manifest = flags.volume_id.empty()
                      ? opened->repository->FindBackup(flags.backup_id)
                      : opened->repository->LoadManifest(flags.volume_id, flags.backup_id);
  if (!manifest && manifest.error().is_not_found()) {
    std::string message = "no backup " + flags.backup_id;
    if (!flags.volume_id.empty()) message += " of volume " + flags.volume_id;
    return FailCommand(NotFound(message + " in " + store).error());
  }
  if (!manifest) return FailCommand(manifest.error());

  auto deleted = opened->repository->DeleteBackup(manifest->volume_id, manifest->backup_id);
  if (!deleted)
    return FailCommand(deleted.error().WithContext("delete the manifest of backup " +
                                                   manifest->backup_id + " of volume " +
                                                   manifest->volume_id));
  spdlog::info("deleted the manifest of backup {} of volume {} in {}", manifest->backup_id,
               manifest->volume_id, store);
  if (common.json) {
    PrintJsonLine({{"store", store},
                   {"backup_id", manifest->backup_id},
                   {"volume_id", manifest->volume_id},
                   {"deleted", true}});
  } else {
    std::printf("deleted backup %s of volume %s; run `kindling store gc` to free its chunks\n",
                manifest->backup_id.c_str(), manifest->volume_id.c_str());
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
