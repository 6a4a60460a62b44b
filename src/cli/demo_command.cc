// `kindling demo`: the whole engine on one machine in a minute — build a
// realistic sparse image, back it up twice (full, then incremental after a
// ~2% change), restore, verify, and prove the restore bit-identical.
#include <stdlib.h>

#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <system_error>

#include "cli/cancel.h"
#include "cli/commands.h"
#include "cli/demo_image.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "crypto/key_file.h"
#include "engine/backup.h"
#include "engine/image_file.h"
#include "engine/repository.h"
#include "engine/restore.h"
#include "engine/verify.h"
#include "storage/store_url.h"

namespace kindling::cli {
namespace {

namespace fs = std::filesystem;

constexpr char kVolumeId[] = "demo-volume";

Result<fs::path> PrepareDirectory(const std::string& requested) {
  std::error_code ec;
  if (requested.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kindling-demo-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return ErrnoError("mkdtemp " + pattern, errno);
    return fs::path(pattern);
  }
  fs::path dir = fs::absolute(requested, ec);
  if (ec) return InvalidArgument("bad --dir " + requested + ": " + ec.message());
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      return InvalidArgument("--dir is not a directory: " + requested);
    if (!fs::is_empty(dir, ec))
      return InvalidArgument("--dir must be empty or not exist yet: " + requested);
    return dir;
  }
  fs::create_directories(dir, ec);
  if (ec) return IoError("create " + dir.string() + ": " + ec.message());
  return dir;
}

// Stdout narration, silent under --json (stdout then holds only the result).
class Narrator {
 public:
  explicit Narrator(bool silent) : silent_(silent) {}
  __attribute__((format(printf, 2, 3))) void Say(const char* format, ...) const {
    if (silent_) return;
    va_list args;
    va_start(args, format);
    std::vprintf(format, args);
    va_end(args);
    std::fflush(stdout);
  }

 private:
  bool silent_;
};

// Bytes the store's objects take (what a bucket would bill for).
std::uint64_t DirectoryBytes(const fs::path& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) total += it->file_size(size_ec);
  }
  return total;
}

std::string Percent(std::uint64_t part, std::uint64_t whole) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%",
                whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return text;
}

struct DemoRun {
  const DemoFlags& flags;
  const CommonFlags& common;
  const engine::CancelFlag& cancel;
  Narrator say;
  nlohmann::json report = nlohmann::json::object();
};

Result<repo::Manifest> Backup(DemoRun& run, const engine::Repository& repository,
                              const fs::path& image, const char* label) {
  auto progress = MakeStderrProgress(run.common);
  engine::BackupOptions options;
  options.volume_id = kVolumeId;
  options.image = image;
  options.zstd_level = run.flags.compression_level;
  options.threads = run.common.threads;
  options.progress = progress->Callback();
  options.cancel = &run.cancel;
  auto manifest = engine::CreateBackup(repository, options);
  progress->Finish();
  if (!manifest) return std::unexpected(manifest.error().WithContext(label));
  const repo::BackupStats& s = manifest->stats;
  run.say.Say(
      "  %-12s %s: %llu chunks (%llu data, %llu holes/zeros), uploaded %llu chunks = %s "
      "(%s of chunks), read %s, %s at %s\n",
      label, manifest->backup_id.c_str(), static_cast<unsigned long long>(manifest->chunks.size()),
      static_cast<unsigned long long>(s.chunks_data),
      static_cast<unsigned long long>(s.chunks_hole),
      static_cast<unsigned long long>(s.chunks_uploaded), FormatBytes(s.bytes_uploaded).c_str(),
      Percent(s.chunks_uploaded, manifest->chunks.size()).c_str(),
      FormatBytes(s.bytes_read).c_str(), FormatDuration(s.duration_ms).c_str(),
      FormatRate(RateOf(manifest->image_size, s.duration_ms)).c_str());
  return manifest;
}

int RunDemoSteps(DemoRun& run) {
  const DemoFlags& flags = run.flags;
  const engine::CancelFlag* cancel = &run.cancel;
  if (flags.size_mib == 0 || flags.size_mib > (1u << 20))
    return ReportError(InvalidArgument("--size-mib must be between 1 and 1048576").error());
  if (!(flags.change_fraction > 0.0 && flags.change_fraction <= 1.0))
    return ReportError(InvalidArgument("--change must be in (0, 1]").error());
  if (auto st = ValidateCompressionLevel(flags.compression_level); !st)
    return ReportError(st.error());
  std::optional<std::uint32_t> chunk_size;
  if (!flags.chunk_size.empty()) {
    auto parsed = ParseChunkSize(flags.chunk_size);
    if (!parsed) return ReportError(parsed.error());
    chunk_size = *parsed;
  }
  const std::uint64_t seed = flags.seed != 0 ? flags.seed : std::random_device{}();

  auto dir = PrepareDirectory(flags.dir);
  if (!dir) return ReportError(dir.error());
  const fs::path image = *dir / "volume.img";
  const fs::path store_dir = *dir / "store";
  const fs::path key_file = *dir / "store.key";
  const fs::path restored = *dir / "restored.img";
  const std::uint64_t size = flags.size_mib << 20;
  run.say.Say("kindling demo in %s (seed %llu)\n", dir->c_str(),
              static_cast<unsigned long long>(seed));
  run.report["dir"] = dir->string();
  run.report["seed"] = seed;

  // 1. The volume image.
  run.say.Say("[1/6] writing a %s sparse volume image %s\n", FormatBytes(size).c_str(),
              image.c_str());
  auto layout = WriteDemoImage(image, size, seed, cancel);
  if (!layout) return FailCommand(layout.error());
  run.say.Say("      %s random, %s text, %s zeros written, %s holes\n",
              FormatBytes(layout->random_bytes).c_str(), FormatBytes(layout->text_bytes).c_str(),
              FormatBytes(layout->zero_bytes).c_str(), FormatBytes(layout->hole_bytes).c_str());
  run.report["image"] = {{"path", image.string()},
                         {"size", size},
                         {"random_bytes", layout->random_bytes},
                         {"text_bytes", layout->text_bytes},
                         {"zero_bytes", layout->zero_bytes},
                         {"hole_bytes", layout->hole_bytes}};

  // 2. A local store.
  auto key = crypto::CreateKeyFile(key_file);
  if (!key) return FailCommand(key.error());
  const std::string url = "file://" + store_dir.string();
  auto store = storage::OpenStore(url, storage::StoreOptions{});
  if (!store) return FailCommand(store.error());
  auto repository = chunk_size ? engine::Repository::Init(**store, *key, *chunk_size)
                               : engine::Repository::Init(**store, *key);
  if (!repository) return FailCommand(repository.error());
  const std::uint32_t store_chunk_size = repository->keys().default_chunk_size;
  run.say.Say("[2/6] initialised store %s (chunk size %s), key file %s\n", url.c_str(),
              FormatBytes(store_chunk_size).c_str(), key_file.c_str());
  run.report["store"] = url;
  run.report["chunk_size"] = store_chunk_size;

  // 3. Full backup, a ~2% change, incremental backup.
  run.say.Say("[3/6] backing up, changing %s of the image, backing up again\n",
              Percent(static_cast<std::uint64_t>(flags.change_fraction * 1000), 1000).c_str());
  auto first = Backup(run, *repository, image, "full");
  if (!first) return FailCommand(first.error());
  auto change = ChangeImage(image, store_chunk_size, flags.change_fraction, seed + 1);
  if (!change) return FailCommand(change.error());
  run.say.Say("  %-12s overwrote %s at random offsets in %llu chunks\n", "change",
              FormatBytes(change->bytes_written).c_str(),
              static_cast<unsigned long long>(change->chunks_touched));
  auto second = Backup(run, *repository, image, "incremental");
  if (!second) return FailCommand(second.error());
  run.report["backups"] = {BackupCreatedJson(*first), BackupCreatedJson(*second)};
  run.report["change"] = {{"bytes_written", change->bytes_written},
                          {"chunks_touched", change->chunks_touched}};

  // 4. Restore the incremental backup.
  run.say.Say("[4/6] restoring backup %s to %s\n", second->backup_id.c_str(), restored.c_str());
  {
    auto progress = MakeStderrProgress(run.common);
    engine::RestoreOptions options;
    options.destination = restored;
    options.threads = run.common.threads;
    options.progress = progress->Callback();
    options.cancel = cancel;
    const auto start = std::chrono::steady_clock::now();
    auto result = engine::RestoreBackup(*repository, *second, options);
    progress->Finish();
    if (!result) return FailCommand(result.error().WithContext("restore"));
    const std::uint64_t ms = MillisecondsSince(start);
    run.say.Say("  %-12s %llu chunks, downloaded %s, %s at %s\n", "restore",
                static_cast<unsigned long long>(result->chunks_fetched),
                FormatBytes(result->bytes_downloaded).c_str(), FormatDuration(ms).c_str(),
                FormatRate(RateOf(result->image_size, ms)).c_str());
    run.report["restore"] = RestoreJson(*second, *result, restored.string(), ms);
  }

  // 5. Verify every chunk the backup references.
  bool verify_ok = false;
  {
    auto progress = MakeStderrProgress(run.common);
    engine::VerifyOptions options;
    options.threads = run.common.threads;
    options.progress = progress->Callback();
    options.cancel = cancel;
    const auto start = std::chrono::steady_clock::now();
    auto report = engine::VerifyBackup(*repository, *second, options);
    progress->Finish();
    if (!report) return FailCommand(report.error().WithContext("verify"));
    const std::uint64_t ms = MillisecondsSince(start);
    verify_ok = report->ok();
    run.say.Say("[5/6] verify: %llu chunks checked in %s, %zu problems\n",
                static_cast<unsigned long long>(report->chunks_checked), FormatDuration(ms).c_str(),
                report->problems.size());
    run.report["verify"] = VerifyJson(*second, *report, ms);
  }

  // 6. Compare the bytes.
  auto original_sha = Sha256OfFile(image, cancel);
  if (!original_sha) return FailCommand(original_sha.error());
  auto restored_sha = Sha256OfFile(restored, cancel);
  if (!restored_sha) return FailCommand(restored_sha.error());
  // The backup's image digest, recomputed from the original file.
  auto original_digest = engine::DigestImageFile(image, second->chunk_size, run.common.threads);
  if (!original_digest) return FailCommand(original_digest.error());
  const bool identical = *original_sha == *restored_sha && *original_digest == second->image_digest;
  run.say.Say("[6/6] sha256 of %s: %s\n", image.filename().c_str(),
              crypto::DigestHex(*original_sha).c_str());
  run.say.Say("      sha256 of %s: %s\n", restored.filename().c_str(),
              crypto::DigestHex(*restored_sha).c_str());
  run.say.Say("      image digest of %s: %s (the backup's image_sha256: %s)\n",
              image.filename().c_str(), crypto::DigestHex(*original_digest).c_str(),
              crypto::DigestHex(second->image_digest).c_str());
  run.say.Say(
      "\nsummary: image %s; full backup uploaded %s in %s; incremental uploaded %s "
      "(%llu of %llu chunks) in %s\n",
      FormatBytes(size).c_str(), FormatBytes(first->stats.bytes_uploaded).c_str(),
      FormatDuration(first->stats.duration_ms).c_str(),
      FormatBytes(second->stats.bytes_uploaded).c_str(),
      static_cast<unsigned long long>(second->stats.chunks_uploaded),
      static_cast<unsigned long long>(second->chunks.size()),
      FormatDuration(second->stats.duration_ms).c_str());
  const std::uint64_t store_bytes = DirectoryBytes(store_dir);
  run.say.Say("store: %s for both backups of the %s image (%s of it not holes)\n",
              FormatBytes(store_bytes).c_str(), FormatBytes(size).c_str(),
              FormatBytes(layout->size - layout->hole_bytes).c_str());
  run.say.Say("verify: %s\n", verify_ok ? "ok" : "PROBLEMS FOUND");
  run.report["store_bytes"] = store_bytes;
  run.say.Say("bit-identical: %s\n", identical ? "yes" : "NO");
  run.report["original_sha256"] = crypto::DigestHex(*original_sha);
  run.report["restored_sha256"] = crypto::DigestHex(*restored_sha);
  run.report["verify_ok"] = verify_ok;
  run.report["bit_identical"] = identical;
  run.report["ok"] = identical && verify_ok;
  if (run.common.json) PrintJsonLine(run.report);
  if (!identical) {
    return ReportError(Error(ErrorKind::kCorruption, "restored image differs from the original"));
  }
  if (!verify_ok) return ReportError(Error(ErrorKind::kCorruption, "verify found problems"));
  return kExitOk;
}

}  // namespace

int RunDemo(const DemoFlags& flags, const CommonFlags& common) {
  DemoRun run{flags, common, InstallCancelHandlers(), Narrator(common.json)};
  return RunDemoSteps(run);
}

}  // namespace kindling::cli
