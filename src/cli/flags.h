// The flags of every command as plain structs, and their validation. CLI11
// fills the structs (cli.cc); everything here is testable without it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kindling::cli {

enum class ProgressMode { kAuto, kBar, kJson, kNone };

// Flags every command accepts.
struct CommonFlags {
  int threads = 0;  // 0: the engine's default
  bool quiet = false;
  std::string progress = "auto";  // auto|bar|json|none
  std::string log_level = "warn";
  std::string log_format = "text";  // text|json (`serve` and `dev` only)
  bool json = false;
};

// Where the store is and what unlocks it.
struct StoreFlags {
  std::string url;
  std::string key_file;
  std::string s3_endpoint;  // flags win over AWS_ENDPOINT_URL
  std::string s3_region;    // flags win over AWS_REGION
};

struct StoreInitFlags {
  StoreFlags store;
  std::string chunk_size;  // empty: the engine's default
};

// Durations are whole seconds (CLI11 parses them with DurationUnits).
struct StoreGcFlags {
  StoreFlags store;
  std::int64_t grace_seconds = 0;
  bool dry_run = false;
  std::int64_t max_wait_seconds = 6 * 3600;           // 0: no limit
  std::int64_t marker_stale_after_seconds = 10 * 60;  // at least 1
};

struct BackupCreateFlags {
  StoreFlags store;
  std::string volume_id;
  std::string image;
  std::string backup_id;   // empty: a new time-ordered UUID
  std::string chunk_size;  // empty: the store's default
  int compression_level = 1;
  std::string snapshot = "auto";        // auto | on | off
  std::string changed_blocks = "auto";  // auto | on | off
  bool reread_skipped = false;
};

struct BackupListFlags {
  StoreFlags store;
  std::string volume_id;  // empty: every volume
};

struct BackupRestoreFlags {
  StoreFlags store;
  std::string backup_id;
  std::string volume_id;  // optional: skips the search by backup id
  std::string destination;
  bool force = false;
};

struct BackupVerifyFlags {
  StoreFlags store;
  std::string backup_id;
  std::string volume_id;
  double sample = 1.0;
  std::uint64_t seed = 0;
};

// Retention counts as given (validated by the command: none negative, at least
// one set); 0 leaves a rule off.
struct BackupForgetFlags {
  StoreFlags store{};
  std::string volume_id{};
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int keep_yearly = 0;
  bool dry_run = false;
};

struct BackupDeleteFlags {
  StoreFlags store{};
  std::string backup_id{};
  std::string volume_id{};  // optional: skips the search by backup id
};

struct ImageDigestFlags {
  std::string image;
  std::string chunk_size;  // empty: 4 MiB, the default chunk size
};

struct DemoFlags {
  std::string dir;  // empty: a new directory under $TMPDIR or /tmp
  std::uint64_t size_mib = 1024;
  std::string chunk_size;  // empty: the engine's default
  double change_fraction = 0.02;
  std::uint64_t seed = 0;  // 0: random
  int compression_level = 1;
};

// "65536", "64K", "64KiB", "4M", "4MiB", "1G" (binary multiples).
[[nodiscard]] Result<std::uint64_t> ParseByteSize(std::string_view text);

inline constexpr std::uint32_t kMinChunkSize = 4u << 10;
inline constexpr std::uint32_t kMaxChunkSize = 64u << 20;
// ParseByteSize, then kMinChunkSize <= size <= kMaxChunkSize.
[[nodiscard]] Result<std::uint32_t> ParseChunkSize(std::string_view text);

[[nodiscard]] Result<ProgressMode> ParseProgressMode(std::string_view text);

// Volume and backup ids become object key components: 1-128 characters of
// [A-Za-z0-9._-], not starting with '.'. `what` names the flag in the message.
[[nodiscard]] Status ValidateId(std::string_view what, std::string_view id);

[[nodiscard]] Status ValidateCommon(const CommonFlags& flags);

}  // namespace kindling::cli
