// `kindling store init`, `kindling store gc` and `kindling version`.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cli/cancel.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/repository_access.h"
#include "crypto/key_file.h"
#include "engine/gc.h"
#include "engine/repository.h"

namespace kindling::cli {

int RunStoreInit(const StoreInitFlags& flags, const CommonFlags& common) {
  std::optional<std::uint32_t> chunk_size;
  if (!flags.chunk_size.empty()) {
    auto parsed = ParseChunkSize(flags.chunk_size);
    if (!parsed) return ReportError(parsed.error());
    chunk_size = *parsed;
  }
  auto store = OpenStoreFrom(flags.store);
  if (!store) return ReportError(store.error());

  bool key_created = false;
  auto key = crypto::LoadKeyFile(flags.store.key_file);
  if (!key && key.error().is_not_found()) {
    key = crypto::CreateKeyFile(flags.store.key_file);
    key_created = key.has_value();
    // A racing init created it first: use that key (it is never replaced).
    if (!key && key.error().kind() == ErrorKind::kAlreadyExists)
      key = crypto::LoadKeyFile(flags.store.key_file);
  }
  if (!key) return ReportError(key.error().WithContext("key file " + flags.store.key_file));

  bool initialised_now = true;
  auto repository = chunk_size ? engine::Repository::Init(**store, *key, *chunk_size)
                               : engine::Repository::Init(**store, *key);
  if (!repository && repository.error().kind() == ErrorKind::kAlreadyExists) {
    // Idempotent: an initialised store that this key unlocks is success.
    initialised_now = false;
    repository = engine::Repository::Open(**store, *key);
    // Initialised already (perhaps by an init that won a race) with another
    // key file: say so, rather than only that this key does not unlock it.
    if (!repository && repository.error().kind() == ErrorKind::kWrongKey)
      return FailCommand(
          Error(ErrorKind::kWrongKey, "wrong key file: the store " + (*store)->Describe() +
                                          " is already initialised with another key file; " +
                                          flags.store.key_file + " does not unlock it"));
  }
  if (!repository) return FailCommand(ExplainUnlockError(repository.error(), flags.store, **store));

  const repo::DataKeys& keys = repository->keys();
  if (common.json) {
    PrintJsonLine({
        {"store", (*store)->Describe()},
        {"store_id", keys.store_id},
        {"key_file", flags.store.key_file},
        {"key_created", key_created},
        {"initialised", initialised_now},
        {"chunk_size", keys.default_chunk_size},
    });
    return kExitOk;
  }
  if (key_created) {
    std::printf(
        "created key file %s\n  keep a copy somewhere safe: without it no backup in this store "
        "can be restored\n",
        flags.store.key_file.c_str());
  }
  std::printf(
      "%s store %s (store id %s, chunk size %s)\n",
      initialised_now ? "initialised" : "already initialised:", (*store)->Describe().c_str(),
      keys.store_id.c_str(), FormatBytes(keys.default_chunk_size).c_str());
  if (!initialised_now && chunk_size && *chunk_size != keys.default_chunk_size) {
    std::printf(
        "  note: the store keeps its chunk size; --chunk-size applies only to new stores\n");
  }
  return kExitOk;
}

namespace {

// Longer than anyone means (100 years), and far from overflowing milliseconds.
constexpr std::int64_t kMaxDurationSeconds = 100LL * 365 * 86400;

Status CheckDuration(std::string_view flag, std::int64_t seconds, std::int64_t at_least) {
  if (seconds < at_least || seconds > kMaxDurationSeconds) {
    return InvalidArgument(std::string(flag) + " must be between " + std::to_string(at_least) +
                           "s and 100 years, got " + std::to_string(seconds) + "s");
  }
  return OkStatus();
}

// The markers' timing from --marker-stale-after: the lock and the sweep
// marker are rewritten every stale_after/20 (kept between 100 ms and 30 s),
// and waits look again every stale_after/10 (at most every second).
engine::GcTiming GcTimingFor(std::chrono::seconds stale_after) {
  using std::chrono::milliseconds;
  engine::GcTiming timing;
  timing.stale_after = stale_after;
  timing.refresh_every =
      std::clamp<milliseconds>(timing.stale_after / 20, milliseconds(100), milliseconds(30'000));
  timing.poll_every = std::min<milliseconds>(milliseconds(1000), timing.stale_after / 10);
  return timing;
}

void PrintGcHuman(const engine::GcReport& r, const std::string& store) {
  const auto n = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  const bool dry = r.dry_run;
  std::printf("garbage collection of %s%s: %s %llu unreferenced chunk(s), %s %s\n", store.c_str(),
              dry ? " (dry run, nothing deleted)" : "", dry ? "would delete" : "deleted",
              n(r.chunks_deleted), dry ? "would free" : "freed",
              FormatBytes(r.bytes_deleted).c_str());
  std::printf("  backups   %llu manifest(s) referencing %llu live chunk(s)\n", n(r.manifests),
              n(r.live_chunks));
  std::printf("  chunks    %llu examined, %llu %s (%s), %s kept\n", n(r.chunks_examined),
              n(r.chunks_deleted), dry ? "would be deleted" : "deleted",
              FormatBytes(r.bytes_deleted).c_str(), FormatBytes(r.bytes_kept).c_str());
  std::printf("  grace     %llu unreferenced chunk(s) kept for the grace (%s)\n",
              n(r.chunks_in_grace), FormatBytes(r.bytes_in_grace).c_str());
  std::printf("  damage    %llu damage record(s) of unreferenced chunks %s\n",
              n(r.damage_records_deleted), dry ? "would be deleted" : "deleted");
  std::printf("  markers   %llu stale writer marker(s) removed\n", n(r.stale_writers_removed));
  std::printf("  lock      %s\n", r.took_over_stale_lock
                                      ? "took over the stale lock of a collection that stopped"
                                      : "no stale lock taken over");
  std::printf("  time      %s\n", FormatDuration(r.duration_ms).c_str());
}

}  // namespace

int RunStoreGc(const StoreGcFlags& flags, const CommonFlags& common) {
  if (auto st = CheckDuration("--grace", flags.grace_seconds, 0); !st)
    return ReportError(st.error());
  if (auto st = CheckDuration("--max-wait", flags.max_wait_seconds, 0); !st)
    return ReportError(st.error());
  if (auto st = CheckDuration("--marker-stale-after", flags.marker_stale_after_seconds, 1); !st)
    return ReportError(st.error());

  auto opened = OpenRepositoryFrom(flags.store);
  if (!opened) return FailCommand(opened.error());

  engine::GcOptions options;
  options.grace = std::chrono::seconds(flags.grace_seconds);
  options.dry_run = flags.dry_run;
  options.max_wait = std::chrono::seconds(flags.max_wait_seconds);
  options.timing = GcTimingFor(std::chrono::seconds(flags.marker_stale_after_seconds));
  options.cancel = &InstallCancelHandlers();
  options.log = [quiet = common.quiet](const std::string& line) {
    if (quiet) return;
    std::fprintf(stderr, "kindling: %s\n", line.c_str());
    std::fflush(stderr);
  };
  const std::string store = opened->store->Describe();
  spdlog::info("garbage collection of {}{}", store, flags.dry_run ? " (dry run)" : "");
  auto report = engine::CollectGarbage(*opened->repository, options);
  if (!report) {
    // Another collection holding the lock is a failure to run now, not a
    // usage error (which kAlreadyExists would map to).
    if (report.error().kind() == ErrorKind::kAlreadyExists)
      return FailCommand(Error(ErrorKind::kFailedPrecondition, report.error().message()));
    return FailCommand(report.error());
  }

  if (common.json) {
    nlohmann::json line = engine::GcReportJson(*report);
    line["store"] = store;
    PrintJsonLine(line);
  } else {
    PrintGcHuman(*report, store);
  }
  return kExitOk;
}

int RunVersion(const CommonFlags& common) {
  if (common.json) {
    PrintJsonLine({{"version", KINDLING_VERSION}});
  } else {
    std::printf("kindling %s\n", KINDLING_VERSION);
  }
  return kExitOk;
}

}  // namespace kindling::cli
